"""What the linear head should read: the study behind BENCHMARKS.md's "The linear head's input".

A logistic regression (scikit-learn, fitted to convergence) on each candidate input, scored by
5-fold cross-validation on flowers17 (daffodil/coltsfoot and all 17 classes) and, for
daffodil/coltsfoot, on the field set (never fitted on). Reads the features that extract.py wrote
($OSR_DIR/feats_f17.npz, feats_field.npz). A reference check beside the product.

    .deps/openset-venv/bin/python bench/openset/heads.py
"""
import os
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

warnings.filterwarnings('ignore')
OUT = os.environ.get('OSR_DIR', '.deps/openset')


def unit(a):
    return a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-6)


def inputs(d):
    """Candidate head inputs. 'descriptor' is what the trainer ships: four parts, each
    L2-normalized and scaled by 1/2 (trainer/src/openset.rs, normalized)."""
    return {
        'block-5 average (the head before)': d['g5'],
        'block-5 average, L2-normalized': unit(d['g5']),
        'blocks 4 + 5 averages, raw': np.hstack([d['g4'], d['g5']]),
        'descriptor (blocks 4 + 5, average + max, parts normalized)':
            np.hstack([unit(d[k]) * 0.5 for k in ('g4', 'm4', 'g5', 'm5')]),
    }


def fit(x, y, c):
    # The trainer's multinomial objective at l2 = 1/c; scikit-learn fits a binary problem as one
    # weight vector, which equals the 2-class multinomial at twice the C.
    return LogisticRegression(C=2 * c if len(set(y)) == 2 else c, max_iter=20000, tol=1e-8).fit(x, y)


def cross_validate(x, y, c):
    acc, nll = [], []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        p = fit(x[tr], y[tr], c).predict_proba(x[te])
        acc.append(np.mean(p.argmax(1) == y[te]))
        nll.append(-np.mean(np.log(p[np.arange(len(te)), y[te]])))
    return np.mean(acc), np.std(acc), np.mean(nll)


def main():
    f17 = np.load(f'{OUT}/feats_f17.npz')
    field = np.load(f'{OUT}/feats_field.npz')
    classes, y17 = np.unique(f17['labels'], return_inverse=True)
    two = np.isin(f17['labels'], ['daffodil', 'coltsfoot'])
    y2 = (f17['labels'][two] == 'coltsfoot').astype(int)
    targets = field['labels'] != 'other'
    yf = (field['labels'][targets] == 'coltsfoot').astype(int)
    x17, xf = inputs(f17), inputs(field)
    print('input | l2 | 2-class CV (NLL) | field right | 17-class CV (NLL)')
    for name in x17:
        for l2 in ([1.0] if 'raw' in name or 'before' in name else [1.0, 0.01, 0.001, 0.0001]):
            c = 1 / l2
            m2, s2, n2 = cross_validate(x17[name][two], y2, c)
            p = fit(x17[name][two], y2, c).predict_proba(xf[name][targets])
            right = int(np.sum(p.argmax(1) == yf))
            m17, s17, n17 = cross_validate(x17[name], y17, c)
            print(f'{name} | {l2:g} | {m2:.4f} +- {s2:.4f} ({n2:.3f}) | {right}/{len(yf)} | {m17:.4f} +- {s17:.4f} ({n17:.3f})', flush=True)


if __name__ == '__main__':
    main()

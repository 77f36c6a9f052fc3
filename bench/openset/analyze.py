"""Open-set score study on cached VGG16 features (see extract.py). Usage: venv/bin/python analyze.py [seed]"""
import os, sys, re, warnings
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
SHARED = os.environ.get('FLOWERCAM_SHARED', '../shared')

warnings.filterwarnings('ignore')
np.set_printoptions(suppress=True, precision=3)
D = os.environ.get('OSR_DIR', '.deps/openset')
TGT = ('daffodil', 'coltsfoot')


def load(name):
    z = np.load(f'{D}/feats_{name}.npz')
    d = {k: z[k] for k in z.files}
    d['f5'] = d['f5'].astype(np.float32)
    return d


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common_groups import groups_for  # noqa: E402


def l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pct(x):
    return 100.0 * np.mean(x)


# ---------------------------------------------------------------- data
F = load('f17'); Q = load('field')
FL = load('f17flip') if os.path.exists(f'{D}/feats_f17flip.npz') else None
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
grp = groups_for(F['paths'])
lab = F['labels']
is_t = np.isin(lab, TGT)
ti = np.where(is_t)[0]
sgkf = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
tr_rel, va_rel = next(sgkf.split(ti, lab[ti], grp[ti]))
TR, VA = ti[tr_rel], ti[va_rel]
others = sorted(set(lab) - set(TGT))
rng = np.random.RandomState(seed)
perm = rng.permutation(len(others))
A_cls = sorted(others[i] for i in perm[:8]); B_cls = sorted(others[i] for i in perm[8:])
A = np.where(np.isin(lab, A_cls))[0]; B = np.where(np.isin(lab, B_cls))[0]
O15 = np.where(~is_t)[0]
qlab = Q['labels']; qsrc = np.array(['oxford102' if os.path.basename(p).startswith('oxford102__') else 'web' for p in Q['paths']])
QT = np.where(qlab != 'other')[0]; QO = np.where(qlab == 'other')[0]
ytr = lab[TR]
print(f'seed {seed}: train {len(TR)} ({dict(zip(*np.unique(ytr, return_counts=True)))}), val {len(VA)} '
      f'({dict(zip(*np.unique(lab[VA], return_counts=True)))}); A={A_cls}; B={B_cls}')
print(f'field: targets {len(QT)} (oxford102 {np.sum(qsrc[QT]=="oxford102")}), other {len(QO)} (oxford102 {np.sum(qsrc[QO]=="oxford102")})')

# ---------------------------------------------------------------- baseline classifier
clf = LogisticRegression(C=1.0, max_iter=5000).fit(F['g5'][TR], ytr)
print('\nBaseline LR(C=1) on raw g5:')
print(f'  val acc {pct(clf.predict(F["g5"][VA]) == lab[VA]):.1f}% (n={len(VA)})')
pq = clf.predict(Q['g5'])
for c in TGT:
    for s in ['oxford102', 'web', None]:
        m = (qlab == c) & ((qsrc == s) if s else True)
        print(f'  field {c:9s} {s or "all":9s}: {pct(pq[m] == c):5.1f}% (n={m.sum()})')
m = qlab != 'other'
print(f'  field targets all: {pct(pq[m] == qlab[m]):.1f}% (n={m.sum()})')

# ---------------------------------------------------------------- representations
def reps(X):
    """X: dict of raw features for a set -> dict of named representations (before any fitted transform)."""
    g5, m5, g4 = X['g5'], X['m5'], X['g4']
    r = {}
    r['g5'] = l2n(g5)
    r['g4g5'] = l2n(np.hstack([l2n(g4), l2n(g5)]))
    r['m5'] = l2n(m5)
    r['g5m5'] = l2n(np.hstack([l2n(g5), l2n(m5)]))
    r['g5c'] = l2n(X['g5c'])
    r['sqrtg5'] = l2n(np.sqrt(g5))
    r['gem3'] = l2n(np.cbrt(np.mean(X['f5'] ** 3, axis=(2, 3))))
    r['sqrt_g4g5'] = l2n(np.hstack([l2n(np.sqrt(g4)), l2n(np.sqrt(g5))]))
    return r


RF = reps(F); RQ = reps(Q); RFL = reps(FL) if FL is not None else None

# fitted transforms (fit only on TR or TR+A, never on field)
def add_centered(R, name, mu, newname):
    R[newname] = l2n(R[name] - mu)


for base in ['g5', 'sqrtg5', 'g4g5']:
    mu_t = RF[base][TR].mean(0)
    mu_ta = RF[base][np.r_[TR, A]].mean(0)
    for R in [RF, RQ] + ([RFL] if RFL else []):
        add_centered(R, base, mu_t, f'{base}-cT')
        add_centered(R, base, mu_ta, f'{base}-cTA')
# PCA-whitening fitted on TR+A (sqrtg5)
for base in ['g5', 'sqrtg5']:
    Xf = RF[base][np.r_[TR, A]]
    mu = Xf.mean(0)
    U, S, Vt = np.linalg.svd(Xf - mu, full_matrices=False)
    for kdim in [64, 128]:
        P = Vt[:kdim].T / (S[:kdim] / np.sqrt(len(Xf)))
        for R in [RF, RQ] + ([RFL] if RFL else []):
            R[f'{base}-pw{kdim}'] = l2n((R[base] - mu) @ P)


# ---------------------------------------------------------------- scoring helpers
def knn_d(bank, q, k=1, excl=None):
    """1 - mean of top-k cosine. excl: bool mask [nq, nbank] of pairs to exclude."""
    s = q @ bank.T
    if excl is not None:
        s = np.where(excl, -np.inf, s)
    s = -np.sort(-s, axis=1)[:, :k]
    return 1 - s.mean(1)


RESULTS = []
SCORES = {}


def evaluate(name, sv, sq, s15=None, sB=None, loo=None, extra=''):
    """sv: val target scores; sq: field scores (all 172); s15: flowers17 other-15 scores; sB: held-out half B."""
    row = {'name': name}
    for p in (95, 97.5, 99):
        t = np.percentile(sv, p)
        row[p] = (pct(sq[QO] > t), pct(sq[QT] > t))
        if p == 97.5:
            row['thr'] = t
            row['o15'] = pct(s15 > t) if s15 is not None else np.nan
            row['B'] = pct(sB > t) if sB is not None else np.nan
            row['tgt_ox'] = pct(sq[QT][qsrc[QT] == 'oxford102'] > t)
            row['tgt_web'] = pct(sq[QT][qsrc[QT] == 'web'] > t)
    if loo is not None:
        t = np.percentile(loo, 97.5)
        row['loo'] = (pct(sq[QO] > t), pct(sq[QT] > t), pct(sv > t))
    y = np.r_[np.zeros(len(QT)), np.ones(len(QO))]
    ts = np.sort(sq[QT]); t = ts[-3]  # ORACLE (field-tuned, diagnostic only): refuse <=2/75 targets
    row['orc'] = pct(sq[QO] > t)
    SCORES[name] = (sv, sq)
    row['auc'] = roc_auc_score(y, np.r_[sq[QT], sq[QO]])
    row['extra'] = extra
    RESULTS.append(row)
    return row


def all_sets(R, key):
    return R[key][VA], RQ[key], R[key][O15], R[key][B]


same_grp_TR = grp[TR][:, None] == grp[TR][None, :]

# 1/2/6: kNN cosine on representations
for key in ['g5', 'g4g5', 'm5', 'g5m5', 'g5c', 'sqrtg5', 'gem3', 'sqrt_g4g5',
            'g5-cT', 'g5-cTA', 'sqrtg5-cT', 'sqrtg5-cTA', 'g4g5-cT', 'g4g5-cTA',
            'g5-pw64', 'g5-pw128', 'sqrtg5-pw64', 'sqrtg5-pw128']:
    bank = RF[key][TR]
    for k in (1, 5):
        v, q, o15, b = (knn_d(bank, x, k) for x in all_sets(RF, key))
        loo = knn_d(bank, bank, k, excl=same_grp_TR)
        evaluate(f'kNN{k} {key}', v, q, o15, b, loo)
    if RFL is not None and key in ('g5', 'g4g5', 'sqrtg5', 'sqrt_g4g5'):
        bank2 = np.vstack([RF[key][TR], RFL[key][np.searchsorted(np.where(is_t)[0], TR)]])
        v, q, o15, b = (knn_d(bank2, x, 1) for x in all_sets(RF, key))
        evaluate(f'kNN1 {key} +flipbank', v, q, o15, b)

# 3: Mahalanobis, shared Ledoit-Wolf, nearest class mean
for key, raw in [('g5 raw', F['g5']), ('g5 l2n', RF['g5']), ('sqrtg5 l2n', RF['sqrtg5'])]:
    Xq = Q['g5'] if key == 'g5 raw' else RQ[key.split()[0]]
    mus = np.stack([raw[TR][ytr == c].mean(0) for c in TGT])
    resid = np.vstack([raw[TR][ytr == c] - mus[i] for i, c in enumerate(TGT)])
    lw = LedoitWolf().fit(resid)
    Pm = lw.precision_

    def maha(X):
        return np.min(np.stack([np.einsum('ij,jk,ik->i', X - m, Pm, X - m) for m in mus], 1), 1)
    evaluate(f'Maha-LW {key}', maha(raw[VA]), maha(Xq), maha(raw[O15]), maha(raw[B]),
             extra=f'shrink={lw.shrinkage_:.3f}')

# 4: cosine to nearest class mean
for key in ['g5', 'sqrtg5', 'g4g5', 'g5-cTA', 'sqrtg5-cTA']:
    mus = l2n(np.stack([RF[key][TR][ytr == c].mean(0) for c in TGT]))
    f = lambda X: 1 - (X @ mus.T).max(1)
    v, q, o15, b = (f(x) for x in all_sets(RF, key))
    evaluate(f'ClassMeanCos {key}', v, q, o15, b)

# 5: negatives (A half)
NEGINFO = {}
for key in ['g5', 'sqrtg5', 'g4g5', 'sqrt_g4g5']:
    bankT, bankN = RF[key][TR], RF[key][A]
    sets = all_sets(RF, key)
    dT = [knn_d(bankT, x, 1) for x in sets]
    dN = [knn_d(bankN, x, 1) for x in sets]
    dT_loo = knn_d(bankT, bankT, 1, excl=same_grp_TR); dN_loo = knn_d(bankN, bankT, 1)
    ratio = [a / np.maximum(b, 1e-6) for a, b in zip(dT, dN)]
    r = evaluate(f'5a kNN-ratio {key}', *ratio[:2], None, ratio[3], loo=dT_loo / dN_loo,
                 extra=f'field tgt NN=neg: {pct(ratio[1][QT] > 1):.1f}%')
    diff = [a - b for a, b in zip(dT, dN)]
    evaluate(f'5a\' kNN-diff {key}', *diff[:2], None, diff[3], loo=dT_loo - dN_loo)
    # combination: kNN1 distance + ratio (rank-free: dT + lam * (dT - dN)) and max of z-scores
    for lam in (0.5, 1.0):
        comb = [a + lam * (a - b) for a, b in zip(dT, dN)]
        evaluate(f'6 dT+{lam}(dT-dN) {key}', *comb[:2], None, comb[3],
                 loo=dT_loo + lam * (dT_loo - dN_loo))
    # LR 3-class and binary
    Xtr = np.vstack([RF[key][TR], RF[key][A]])
    y3 = np.r_[ytr, np.array(['other'] * len(A))]
    y2 = np.r_[np.zeros(len(TR)), np.ones(len(A))]
    for C in (1.0, 10.0):
        for cw in (None, 'balanced'):
            lr3 = LogisticRegression(C=C, max_iter=5000, class_weight=cw).fit(Xtr, y3)
            io = list(lr3.classes_).index('other')
            f = lambda X: lr3.predict_proba(X)[:, io]
            v, q, o15, b = (f(x) for x in sets)
            pred = lr3.predict(RQ[key][QT])
            evaluate(f'5b LR3 p(other) {key} C={C} cw={cw}', v, q, None, b,
                     extra=f'field tgt argmax=other {pct(pred == "other"):.1f}%, wrong class {pct((pred != "other") & (pred != qlab[QT])):.1f}%')
            lr2 = LogisticRegression(C=C, max_iter=5000, class_weight=cw).fit(Xtr, y2)
            f = lambda X: lr2.predict_proba(X)[:, 1]
            v, q, o15, b = (f(x) for x in sets)
            evaluate(f'5c LR2 p(neg) {key} C={C} cw={cw}', v, q, None, b,
                     extra=f'field tgt p(neg)>0.5 {pct(q[QT] > 0.5):.1f}%')

# all 15 other classes as negatives (deployable variant; no flowers17 held-out eval possible)
for key in ['g5', 'sqrtg5']:
    bankT, bankN = RF[key][TR], RF[key][O15]
    dT = [knn_d(bankT, x, 1) for x in (RF[key][VA], RQ[key])]
    dN = [knn_d(bankN, x, 1) for x in (RF[key][VA], RQ[key])]
    ratio = [a / b for a, b in zip(dT, dN)]
    evaluate(f'5a kNN-ratio {key} neg=all15', *ratio, extra=f'field tgt NN=neg: {pct(ratio[1][QT] > 1):.1f}%')
    comb = [a + 0.5 * (a - b) for a, b in zip(dT, dN)]
    evaluate(f'6 dT+0.5(dT-dN) {key} neg=all15', *comb)


# ---------------------------------------------------------------- print
def fmt(row):
    s = f"{row['name']:42s} {row['auc']:.3f} orc{row['orc']:5.1f} | "
    for p in (95, 97.5, 99):
        s += f"{row[p][0]:5.1f} {row[p][1]:5.1f} | "
    s += f"{row['o15']:5.1f} {row['B']:5.1f} | ox {row['tgt_ox']:4.1f} web {row['tgt_web']:4.1f}"
    if 'loo' in row:
        s += f" | LOO {row['loo'][0]:5.1f} {row['loo'][1]:5.1f} (val {row['loo'][2]:4.1f})"
    if row['extra']:
        s += ' | ' + row['extra']
    return s


print('\nscore                                      AUROC | p95: oth  tgt | p97.5: oth tgt | p99: oth tgt | f17 o15  B(p97.5) | field-tgt refusal by source @97.5 | LOO-thr(97.5) oth tgt')
for r in RESULTS:
    print(fmt(r))

import pickle
pickle.dump((RESULTS, SCORES, list(Q['paths']), list(qlab)), open(f'{D}/results_seed{seed}.pkl', 'wb'))

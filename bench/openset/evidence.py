"""Fifth round of the open-set study (2026-12-07, night): the shipped distance lowered by the
head's evidence for its answer, `d - w * min(|logit margin| / T, cap)`, with the threshold from
the 160 photos held out: their distance leave-one-out (near-duplicate groups together, as the
trainer does) and their margin from logistic regressions that never saw them (5-fold
cross-validation, averaged over 1 or 4 draws of the folds), T fitted on those held-out logits
(the trainer fits T on its cross-validation's one draw, as the exported head is scaled by it).
Eight draws of the folds per row show how far the calibrated threshold moves with them.
References: the 160 photos and one field view of each (v07a, as shipped). Inputs: regions.py's
and power_views.py's maps.

  .deps/openset-venv/bin/python bench/openset/evidence.py     # needs scikit-learn and scipy too
"""
import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
import regions as R

T, F, O, (V,), group, target, y = R.shipped('v07a')
bank, bank_group = np.concatenate([T, V]), np.concatenate([group, group])
held_out_d = 1 - np.where(group[:, None] == bank_group[None, :], -9, T @ bank.T).max(1)
field_d, others_d = 1 - (F @ bank.T).max(1), 1 - (O @ bank.T).max(1)
head_x, head_y = np.concatenate([T, V]), np.concatenate([y, y])
head = LogisticRegression(C=100, max_iter=5000).fit(head_x, head_y)


def held_out_logits(seed, draws):
    logits = np.zeros(len(T))
    for draw in range(draws):
        folds = np.random.default_rng(seed * 100 + draw).permutation(group.max() + 1)[group]
        for train, test in GroupKFold(5).split(T, y, folds):
            rows = np.concatenate([train, train + len(T)])
            logits[test] += LogisticRegression(C=100, max_iter=5000).fit(head_x[rows], head_y[rows]).decision_function(T[test]) / draws
    return logits


def row(weight, cap, draws, tempered):
    cells = []
    for seed in range(8):
        oof = held_out_logits(seed, draws)
        sign = np.where(y == 1, 1, -1)
        t = minimize_scalar(lambda t: np.mean(np.log1p(np.exp(-sign * oof / t))), bounds=(0.05, 50), method='bounded').x if tempered else 1
        evidence = lambda logits: np.minimum(np.abs(logits) / t, cap)
        a = held_out_d - weight * evidence(oof)
        b = field_d - weight * evidence(head.decision_function(F))
        c = others_d - weight * evidence(head.decision_function(O))
        threshold = np.sort(a)[int(np.ceil(0.975 * len(a))) - 1]
        cells.append(((b[target] > threshold).sum(), 100 * (b[~target] > threshold).mean(), 100 * (c > threshold).mean(),
                      (c[:, None] > a[None, :]).mean(), (b[~target][:, None] > b[target][None, :]).mean()))
    c = np.array(cells)
    both = ((c[:, 0] <= 2) & (c[:, 1] >= 60)).sum()
    print(f'| {weight} | {cap} | {"T" if tempered else "raw"} | {draws} | {c[:, 0].mean():.2f} ({c[:, 0].min():.0f}-{c[:, 0].max():.0f}) '
          f'| {c[:, 1].mean():.1f}% ({c[:, 1].min():.1f}-{c[:, 1].max():.1f}) | {c[:, 4].mean():.3f} | {c[:, 2].mean():.1f}% | {c[:, 3].mean():.3f} | {both} of 8 |', flush=True)


print('| weight | cap | margin | fold draws averaged | targets refused | `other` refused | AUROC (field) | flowers17 others refused | AUROC (held-out photos against flowers17 others) | both figures met |')
print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
row(0, 5, 1, True)
for draws in [1, 4]:
    for weight in [0.02, 0.03, 0.04]:
        row(weight, 5, draws, True)
row(0.03, 3, 4, True)
for weight in [0.02, 0.03]:
    row(weight, 5, 4, False)

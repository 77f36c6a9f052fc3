"""Sixth look at the open-set study (2026-12-08): the shipped score (the distance lowered by the
head's evidence, as evidence.py and the trainer compute it) under other threshold rules, and with
the nearest reference taken among the answered class's only. References: the 160 photos and one
field view of each, two independent draws of the views (v07a, v07b); held-out evidence averaged
over 4 draws of the folds, 6 seeds of them (threshold rules) or 4 (class-conditional). Prints one
line per draw: the 3 highest field-target scores, the 6 highest held-out scores, and for each
rule its threshold, targets refused (T), field `other` refused (O, %), flowers17's other 15
classes refused (F, %).

  .deps/openset-venv/bin/python bench/openset/threshold_rules.py    # needs scipy and scikit-learn
"""
import numpy as np
from scipy import stats
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
import regions as R

WEIGHT, CAP = 0.04, 5
T, F, O, view_draws, group, target, y = R.shipped('v07a', 'v07b')


def harrell_davis(x, q):
    """A smoothed quantile: every order statistic weighted by a beta density around q."""
    x, n = np.sort(x), len(x)
    weights = np.diff(stats.beta.cdf(np.arange(n + 1) / n, (n + 1) * q, (n + 1) * (1 - q)))
    return (weights * x).sum()


def pareto_tail(x, q, tail=0.2):
    """The quantile of a generalized Pareto distribution fitted to the highest `tail` share."""
    x, n = np.sort(x), len(x)
    k = int(n * tail)
    start = x[n - k - 1]
    shape, _, scale = stats.genpareto.fit(x[n - k:] - start, floc=0)
    return start + stats.genpareto.ppf(1 - (1 - q) / (k / n), shape, 0, scale)


def empirical(x, q):
    return np.sort(x)[int(np.ceil(q * len(x))) - 1]


RULES = [('97.5% (shipped)', lambda a: empirical(a, 0.975)), ('Harrell-Davis 97.5%', lambda a: harrell_davis(a, 0.975)),
         ('Pareto tail 20%', lambda a: pareto_tail(a, 0.975)), ('Pareto tail 30%', lambda a: pareto_tail(a, 0.975, 0.3)),
         ('98.5%', lambda a: empirical(a, 0.985))]

for views, V in zip(['v07a', 'v07b'], view_draws):
    bank, bank_group, bank_y = np.concatenate([T, V]), np.concatenate([group, group]), np.concatenate([y, y])
    head_x, head_y = np.concatenate([T, V]), np.concatenate([y, y])
    head = LogisticRegression(C=100, max_iter=5000).fit(head_x, head_y)
    field_logits, others_logits = head.decision_function(F), head.decision_function(O)
    for seed in range(6):
        logits = np.zeros(len(T))
        for draw in range(4):
            folds = np.random.default_rng(seed * 100 + draw).permutation(group.max() + 1)[group]
            for train, test in GroupKFold(5).split(T, y, folds):
                rows = np.concatenate([train, train + len(T)])
                logits[test] += LogisticRegression(C=100, max_iter=5000).fit(head_x[rows], head_y[rows]).decision_function(T[test]) / 4
        sign = np.where(y == 1, 1, -1)
        t = minimize_scalar(lambda t: np.mean(np.log1p(np.exp(-sign * logits / t))), bounds=(0.05, 50), method='bounded').x
        evidence = lambda l: np.minimum(np.abs(l) / t, CAP)

        def scores(class_conditional):
            def distance(X, answered, leave_out=None):
                similarity = X @ bank.T
                if leave_out is not None:
                    similarity = np.where(leave_out, -9, similarity)
                if class_conditional:
                    similarity = np.where(bank_y[None, :] == answered[:, None], similarity, -9)
                return 1 - similarity.max(1)
            held_out = distance(T, (logits > 0).astype(int), group[:, None] == bank_group[None, :]) - WEIGHT * evidence(logits)
            field = distance(F, (field_logits > 0).astype(int)) - WEIGHT * evidence(field_logits)
            others = distance(O, (others_logits > 0).astype(int)) - WEIGHT * evidence(others_logits)
            return held_out, field, others

        cell = lambda thr, b, c: f'{thr:.4f} T{(b[target] > thr).sum()} O{100 * (b[~target] > thr).mean():.0f} F{100 * (c > thr).mean():.0f}'
        a, b, c = scores(False)
        print(views, seed, 'targets', np.round(np.sort(b[target])[::-1][:3], 3), 'held out', np.round(np.sort(a)[::-1][:6], 3),
              ' | '.join(f'{name} {cell(rule(a), b, c)}' for name, rule in RULES), flush=True)
        if seed < 4:
            a, b, c = scores(True)
            print(views, seed, 'class-conditional nearest reference:', cell(empirical(a, 0.975), b, c), flush=True)

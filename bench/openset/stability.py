"""Threshold stability over 20 random target splits (and A/B negative partitions).
For each config: threshold from (i) 97.5th pct of val scores (bank=train), (ii) LOO on train (bank=train,
each train image scored against the others minus its own near-duplicate group), (iii) deployable: bank=train+val,
LOO threshold on train+val. Reports mean/sd/min/max of field/other refusal and field-target refusal."""
import os, sys, warnings
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
sys.argv = sys.argv[:1]
warnings.filterwarnings('ignore')
D = os.environ.get('OSR_DIR', '.deps/openset')
TGT = ('daffodil', 'coltsfoot')


def l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def load(name):
    z = np.load(f'{D}/feats_{name}.npz')
    return {k: z[k] for k in z.files}


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common_groups import groups_for
F = load('f17'); Q = load('field')
grp = groups_for(F['paths'])
lab = F['labels']; is_t = np.isin(lab, TGT); ti = np.where(is_t)[0]
qlab = Q['labels']; QT = qlab != 'other'; QO = ~QT
others = sorted(set(lab) - set(TGT))


def rep(X, key):
    if key == 'g5':
        return l2n(X['g5'])
    if key == 'sqrtg5':
        return l2n(np.sqrt(X['g5']))
    if key == 'g4g5':
        return l2n(np.hstack([l2n(X['g4']), l2n(X['g5'])]))
    if key == 'sqrt_g4g5':
        return l2n(np.hstack([l2n(np.sqrt(X['g4'])), l2n(np.sqrt(X['g5']))]))
    if key == 'g5m5':
        return l2n(np.hstack([l2n(X['g5']), l2n(X['m5'])]))
    raise KeyError(key)


def topk(S, k):
    return -np.sort(-S, axis=1)[:, :k].mean(1)


def score(cfg, R, RQ_, bank_idx, neg_idx, q_idx=None, loo=False):
    """returns scores for f17 rows q_idx (with LOO exclusion if loo) and field."""
    kind, k = cfg['kind'], cfg.get('k', 1)
    bank = R[bank_idx]
    out = []
    for X, excl in ([(R[q_idx], (grp[q_idx][:, None] == grp[bank_idx][None, :]) if loo else None)] if q_idx is not None else []) + [(RQ_, None)]:
        S = X @ bank.T
        if excl is not None:
            S = np.where(excl, -np.inf, S)
        dT = 1 - topk(S, k)
        if kind == 'knn':
            out.append(dT)
        else:
            dN = 1 - (X @ R[neg_idx].T).max(1)
            out.append(dT / dN if kind == 'ratio' else dT + cfg['lam'] * (dT - dN))
    return out


CFGS = [
    dict(name='kNN1 g5', key='g5', kind='knn', k=1),
    dict(name='kNN5 g5', key='g5', kind='knn', k=5),
    dict(name='kNN1 sqrtg5', key='sqrtg5', kind='knn', k=1),
    dict(name='kNN1 sqrt_g4g5', key='sqrt_g4g5', kind='knn', k=1),
    dict(name='ratio g5 (A)', key='g5', kind='ratio'),
    dict(name='ratio sqrtg5 (A)', key='sqrtg5', kind='ratio'),
    dict(name='dT+0.5(dT-dN) sqrtg5 (A)', key='sqrtg5', kind='comb', lam=0.5),
    dict(name='kNN1 g4g5', key='g4g5', kind='knn', k=1),
    dict(name='kNN5 g4g5', key='g4g5', kind='knn', k=5),
    dict(name='kNN1 g5m5', key='g5m5', kind='knn', k=1),
    dict(name='dT+0.5(dT-dN) g5 (A)', key='g5', kind='comb', lam=0.5),
    dict(name='dT+0.5(dT-dN) g4g5 (A)', key='g4g5', kind='comb', lam=0.5),
    dict(name='dT+1.0(dT-dN) g4g5 (A)', key='g4g5', kind='comb', lam=1.0),
    dict(name='dT+0.5(dT-dN) g4g5 (all15)', key='g4g5', kind='comb', lam=0.5, neg='all'),
    dict(name='dT+0.5(dT-dN) g5 (all15)', key='g5', kind='comb', lam=0.5, neg='all'),
    dict(name='ratio g5 (all15)', key='g5', kind='ratio', neg='all'),
    dict(name='ratio sqrtg5 (all15)', key='sqrtg5', kind='ratio', neg='all'),
]
extra = os.environ.get('CFGS_EXTRA')
if extra:
    CFGS += eval(extra)

NSEED = 20
res = {c['name']: {m: [] for m in ('val', 'loo', 'dep')} for c in CFGS}
reps_cache = {}
for c in CFGS:
    if c['key'] not in reps_cache:
        reps_cache[c['key']] = (rep(F, c['key']), rep(Q, c['key']))
for seed in range(NSEED):
    tr_rel, va_rel = next(StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(ti, lab[ti], grp[ti]))
    TR, VA = ti[tr_rel], ti[va_rel]; TV = ti
    perm = np.random.RandomState(seed).permutation(len(others))
    A = np.where(np.isin(lab, [others[i] for i in perm[:8]]))[0]
    ALL = np.where(~is_t)[0]
    for c in CFGS:
        R, RQ_ = reps_cache[c['key']]
        neg = ALL if c.get('neg') == 'all' else A
        sv, sq = score(c, R, RQ_, TR, neg, VA)
        sl, _ = score(c, R, RQ_, TR, neg, TR, loo=True)
        sd, sq2 = score(c, R, RQ_, TV, neg, TV, loo=True)
        for m, t, s in (('val', np.percentile(sv, 97.5), sq), ('loo', np.percentile(sl, 97.5), sq),
                        ('dep', np.percentile(sd, 97.5), sq2)):
            res[c['name']][m].append((t, 100 * np.mean(s[QO] > t), 100 * np.mean(s[QT] > t)))

print(f'{NSEED} splits. cells: field/other refused % mean±sd [min-max] ; field targets refused % mean±sd [min-max]')
for c in CFGS:
    line = f"{c['name']:28s}"
    for m in ('val', 'loo', 'dep'):
        a = np.array(res[c['name']][m])
        line += f" | {m}: oth {a[:,1].mean():4.1f}±{a[:,1].std():3.1f} [{a[:,1].min():.0f}-{a[:,1].max():.0f}] tgt {a[:,2].mean():3.1f}±{a[:,2].std():3.1f} [{a[:,2].min():.0f}-{a[:,2].max():.0f}] thr_sd/mean {a[:,0].std()/abs(a[:,0].mean()):.3f}"
    print(line)

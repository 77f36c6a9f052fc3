import os
import numpy as np
SHARED = os.environ.get('FLOWERCAM_SHARED', '../shared')
def groups_for(paths):
    """union-find over near_duplicates.tsv pairs; returns int group id per path (flowers17 rel paths)."""
    idx = {p.split('flowers17/')[1]: i for i, p in enumerate(paths)}
    par = list(range(len(paths)))

    def f(i):
        while par[i] != i:
            par[i] = par[par[i]]; i = par[i]
        return i
    for line in open(os.path.join(SHARED, 'data/flowers17/near_duplicates.tsv')):
        if line.startswith('#') or line.startswith('group'):
            continue
        c = line.rstrip('\n').split('\t')
        if len(c) < 3 or c[1] not in idx or c[2] not in idx:
            continue
        a, b = f(idx[c[1]]), f(idx[c[2]])
        par[a] = b
    return np.array([f(i) for i in range(len(paths))])



"""Open-set follow-up study: augmented reference banks, pooled-feature variants, k-th neighbour,
power normalisation. Threshold always = 97.5th pct of leave-one-group-out scores of all 160
flowers17 daffodil+coltsfoot photos (the product's refit on train+val); never tuned on field.

Usage (from the repository root, 1 CPU thread):
  OMP_NUM_THREADS=1 .deps/openset-venv/bin/python bench/openset/explore_aug.py extract   # views -> $OSR_DIR/feats_f17views.npz
  OMP_NUM_THREADS=1 .deps/openset-venv/bin/python bench/openset/explore_aug.py analyze   # table -> stdout

Needs $OSR_DIR/feats_{f17,field,f17flip}.npz from extract.py.

Extra views of each target training photo (all from the product's centre square: EXIF-transposed
RGB image of w x h, s = min(w,h), l = (w-s)//2, t = (h-s)//2; square box (l, t, l+s, t+s)):
  c08_tl / c08_tr / c08_bl / c08_br : side c = round(0.8*s), boxes (l, t), (l+s-c, t), (l, t+s-c), (l+s-c, t+s-c)
  c07                               : side c = round(0.7*s), box origin (l+(s-c)//2, t+(s-c)//2)
  stretch                           : the whole image (no crop) resized to 224x224 (aspect not kept)
each then resized to 224x224 (PIL bilinear, antialiased as in extract.py), caffe normalisation.
flip (feats_f17flip.npz): the 224 centre crop mirrored left-right.
"""
import os, sys, time
import numpy as np

D = os.environ.get('OSR_DIR', '.deps/openset')
SHARED = os.environ.get('FLOWERCAM_SHARED', '../shared')
TGT = ('daffodil', 'coltsfoot')
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
VIEWS = ['c08_tl', 'c08_tr', 'c08_bl', 'c08_br', 'c07', 'stretch']


# ------------------------------------------------------------------ extraction
def view_box(w, h, view):
    s = min(w, h)
    l, t = (w - s) // 2, (h - s) // 2
    if view == 'center':
        return (l, t, l + s, t + s)
    if view == 'stretch':
        return (0, 0, w, h)
    if view.startswith('c08_'):
        c = int(round(0.8 * s))
        ox = {'l': l, 'r': l + s - c}[view[-1]]
        oy = {'t': t, 'b': t + s - c}[view[-2]]
        return (ox, oy, ox + c, oy + c)
    if view == 'c07':
        c = int(round(0.7 * s))
        o = (s - c) // 2
        return (l + o, t + o, l + o + c, t + o + c)
    raise KeyError(view)


def preprocess_view(path, view):
    from PIL import Image, ImageOps
    MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
    im = ImageOps.exif_transpose(Image.open(path)).convert('RGB')
    im = im.crop(view_box(*im.size, view)).resize((224, 224), Image.BILINEAR)
    a = np.asarray(im, np.float32)[:, :, ::-1] - MEAN_BGR
    return a.transpose(2, 0, 1)


def extract():
    import onnxruntime as ort
    import extract as E  # bench/openset/extract.py (graph with extra pooled outputs)
    E.OUT = D
    mp, outs = E.build_model()
    so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
    sess = ort.InferenceSession(mp, so, providers=['CPUExecutionProvider'])
    F = np.load(f'{D}/feats_f17.npz'); Q = np.load(f'{D}/feats_field.npz')
    data = os.path.join(SHARED, 'data')
    # 1. check the cached features reproduce with this weights file (a few photos)
    for Z, idx in ((Q, [0, 80, 171]), (F, list(np.where(np.isin(F['labels'], TGT))[0][[0, 100]]))):
        x = np.stack([preprocess_view(os.path.join(data, Z['paths'][i]), 'center') for i in idx])
        r = dict(zip(outs, sess.run(outs, {'image': x})))
        print('cache check g5 max|diff|', np.abs(r['g5'] - Z['g5'][idx]).max(), 'scale', np.abs(Z['g5'][idx]).max(), flush=True)
    # 2. the views
    ti = np.where(np.isin(F['labels'], TGT))[0]
    paths = [os.path.join(data, p) for p in F['paths'][ti]]
    fn = f'{D}/feats_f17views.npz'
    res = {}
    if os.path.exists(fn):
        z = np.load(fn); res = {k: z[k] for k in z.files}
    keep = ['g4', 'm4', 'g5c', 'g5', 'm5']
    for v in VIEWS:
        if f'{v}__g5' in res:
            print('skip', v); continue
        t0 = time.time(); acc = {k: [] for k in keep}; gem = []
        for i in range(0, len(paths), 8):
            x = np.stack([preprocess_view(p, v) for p in paths[i:i + 8]])
            r = dict(zip(outs, sess.run(outs, {'image': x})))
            for k in keep:
                acc[k].append(r[k])
            gem.append(np.cbrt(np.mean(np.maximum(r['features'], 0) ** 3, axis=(2, 3))))
        for k in keep:
            res[f'{v}__{k}'] = np.concatenate(acc[k])
        res[f'{v}__gem3'] = np.concatenate(gem)
        res['paths'] = F['paths'][ti]
        np.savez(fn, **res)
        print('view', v, f'{time.time()-t0:.0f}s', flush=True)


# ------------------------------------------------------------------ analysis
def l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pct(x):
    return 100.0 * np.mean(x)


def analyze():
    from sklearn.metrics import roc_auc_score
    from common_groups import groups_for

    def load(name):
        z = np.load(f'{D}/feats_{name}.npz')
        return {k: z[k] for k in z.files}
    F = load('f17'); Q = load('field'); FL = load('f17flip')
    V = load('f17views') if os.path.exists(f'{D}/feats_f17views.npz') else {}
    grp = groups_for(F['paths'])
    lab = F['labels']; is_t = np.isin(lab, TGT); ti = np.where(is_t)[0]; O15 = np.where(~is_t)[0]
    assert (FL['paths'] == F['paths'][ti]).all()
    if V:
        assert (V['paths'] == F['paths'][ti]).all()
    qlab = Q['labels']; QT = np.where(qlab != 'other')[0]; QO = np.where(qlab == 'other')[0]
    gT = grp[ti]
    # gem3 for the base sets from the stored f5 map
    for Z in (F, Q, FL):
        Z['gem3'] = np.cbrt(np.mean(np.maximum(Z['f5'].astype(np.float32), 0) ** 3, axis=(2, 3)))
    nviews_avail = [v for v in VIEWS if f'{v}__g5' in V]
    print(f'flowers17 targets {len(ti)} ({len(set(gT))} near-dup groups), others {len(O15)}; field targets {len(QT)}, other {len(QO)}; '
          f'extra views available: {nviews_avail}')

    # representations --------------------------------------------------
    def raw(Z, k, pre=''):
        return Z[pre + k].astype(np.float32)

    def rep(get, key):
        """get(k) -> raw pooled [n,512]. key names a representation."""
        p = lambda x, a: np.power(np.maximum(x, 0), a)
        if key == 'g5': return l2n(get('g5'))
        if key == 'sqrtg5': return l2n(np.sqrt(get('g5')))
        if key == 'pow.3g5': return l2n(p(get('g5'), 0.3))
        if key == 'm5': return l2n(get('m5'))
        if key == 'sqrtm5': return l2n(np.sqrt(get('m5')))
        if key == 'gem3': return l2n(get('gem3'))
        if key == 'g5c': return l2n(get('g5c'))
        if key == 'g5m5': return l2n(np.hstack([l2n(get('g5')), l2n(get('m5'))]))
        if key == 'sqrt_g5m5': return l2n(np.hstack([l2n(np.sqrt(get('g5'))), l2n(np.sqrt(get('m5')))]))
        if key == 'g4g5': return l2n(np.hstack([l2n(get('g4')), l2n(get('g5'))]))
        if key == 'sqrt_g4g5': return l2n(np.hstack([l2n(np.sqrt(get('g4'))), l2n(np.sqrt(get('g5')))]))
        if key == 'g4g5m4m5': return l2n(np.hstack([l2n(get(k)) for k in ('g4', 'g5', 'm4', 'm5')]))
        if key == 'sqrt_g4g5m5': return l2n(np.hstack([l2n(np.sqrt(get(k))) for k in ('g4', 'g5', 'm5')]))
        if key == 'g4g5m5': return l2n(np.hstack([l2n(get(k)) for k in ('g4', 'g5', 'm5')]))
        raise KeyError(key)

    def R(key):
        """(bank-views dict name->[160,d], f17 others [1200,d], field [172,d])"""
        views = {'center': rep(lambda k: raw(F, k)[ti], key), 'flip': rep(lambda k: raw(FL, k), key)}
        for v in nviews_avail:
            views[v] = rep(lambda k: raw(V, k, v + '__'), key)
        return views, rep(lambda k: raw(F, k)[O15], key), rep(lambda k: raw(Q, k), key)

    cache = {}

    def Rc(key):
        if key not in cache:
            cache[key] = R(key)
        return cache[key]

    # scoring -------------------------------------------------------------
    def score(S, k=1, mode='kth', excl=None):
        """S: cosine sims [nq, nbank]. mode 'kth': 1 - k-th largest; 'mean': 1 - mean of top k."""
        if excl is not None:
            S = np.where(excl, -np.inf, S)
        top = -np.sort(-S, axis=1)[:, :k]
        return 1 - (top[:, -1] if mode == 'kth' else top.mean(1))

    def run(key, bank_views=('center',), k=1, mode='kth', idx=None):
        """idx: subset of the 160 target photos used as the reference bank (default all)."""
        views, o15, q = Rc(key)
        idx = np.arange(len(ti)) if idx is None else np.asarray(idx)
        bank = np.vstack([views[v][idx] for v in bank_views])
        bgrp = np.tile(gT[idx], len(bank_views))
        loo = score(views['center'][idx] @ bank.T, k, mode, excl=gT[idx][:, None] == bgrp[None, :])
        return loo, score(q @ bank.T, k, mode), score(o15 @ bank.T, k, mode), bank.shape

    ROWS = []
    y = np.r_[np.zeros(len(QT)), np.ones(len(QO))]

    def evaluate(name, key, bank_views=('center',), k=1, mode='kth', train_passes=0):
        loo, q, o15, shp = run(key, bank_views, k, mode)
        return finish(name, loo, q, o15, shp, train_passes)
        t = np.percentile(loo, 97.5)
        row = dict(name=name, oth=pct(q[QO] > t), tgt=pct(q[QT] > t), ntgt=int(np.sum(q[QT] > t)),
                   auc=roc_auc_score(y, np.r_[q[QT], q[QO]]), o15=pct(o15 > t), bank=f'{shp[0]}x{shp[1]}',
                   floats=shp[0] * shp[1], passes=train_passes, thr=t,
                   orc=pct(q[QO] > np.sort(q[QT])[-3]))  # oracle, field-tuned (<=2/75 targets): diagnostic only
        ROWS.append(row)
        print(f"{name:46s} oth {row['oth']:5.1f} tgt {row['tgt']:4.1f} ({row['ntgt']:2d}/75) AUROC {row['auc']:.3f} "
              f"f17oth {row['o15']:5.1f} | bank {row['bank']:9s} +passes {train_passes:4d} | thr {t:.4f} | oracle {row['orc']:4.1f}",
              flush=True)
        return row

    def local_scale(key, bank_views, idx=None):
        views, o15, q = Rc(key)
        idx = np.arange(len(ti)) if idx is None else np.asarray(idx)
        bank = np.vstack([views[v][idx] for v in bank_views])
        bgrp = np.tile(gT[idx], len(bank_views))
        # r_j: NN distance of bank row j to the centre views of the other groups (its own group excluded);
        # r1 with its group g1, r2 = nearest outside groups (own, g1): used when the query's group is g1
        C = views['center'][idx]; cg = gT[idx]
        Dj = 1 - bank @ C.T
        Dj = np.where(bgrp[:, None] == cg[None, :], np.inf, Dj)
        a1 = np.argmin(Dj, 1); r1 = Dj[np.arange(len(Dj)), a1]; g1 = cg[a1]
        D2 = np.where(cg[None, :] == g1[:, None], np.inf, Dj); r2 = D2.min(1)
        loo_S = 1 - C @ bank.T  # [n, nbank]
        R_ = np.where(cg[:, None] == g1[None, :], r2[None, :], r1[None, :])
        loo = np.where(cg[:, None] == bgrp[None, :], np.inf, loo_S / R_).min(1)
        f = lambda X: ((1 - X @ bank.T) / r1[None, :]).min(1)
        return loo, f(q), f(o15), bank.shape

    def evaluate_ls(name, key, vs, passes):
        loo, q, o15, shp = local_scale(key, vs)
        finish(name, loo, q, o15, (shp[0], shp[1] + 1), passes)

    def finish(name, loo, q, o15, shp, train_passes, thr=None):
        t = np.percentile(loo, 97.5) if thr is None else thr
        row = dict(name=name, oth=pct(q[QO] > t), tgt=pct(q[QT] > t), ntgt=int(np.sum(q[QT] > t)),
                   auc=roc_auc_score(y, np.r_[q[QT], q[QO]]), o15=pct(o15 > t), bank=f'{shp[0]}x{shp[1]}',
                   floats=shp[0] * shp[1], passes=train_passes, thr=t, orc=pct(q[QO] > np.sort(q[QT])[-3]))
        row['refused_tgt'] = [os.path.basename(p)[:28] for p in Q['paths'][QT][q[QT] > t]]
        ROWS.append(row)
        print(f"{name:46s} oth {row['oth']:5.1f} tgt {row['tgt']:4.1f} ({row['ntgt']:2d}/75) AUROC {row['auc']:.3f} "
              f"f17oth {row['o15']:5.1f} | bank {row['bank']:9s} +passes {train_passes:4d} | thr {t:.4f} | oracle {row['orc']:4.1f}",
              flush=True)
        return row

    def patch_knn():
        def loc(Z, rows=None):
            f = Z['f5'] if rows is None else Z['f5'][rows]
            f = f.astype(np.float32).reshape(len(f), 512, 49).transpose(0, 2, 1)
            return f / np.maximum(np.linalg.norm(f, axis=2, keepdims=True), 1e-6)
        banks = {'center': loc(F, ti), 'flip': loc(FL)}
        for bv in (('center',), ('center', 'flip')):
            B = np.concatenate([banks[v] for v in bv]).reshape(-1, 512)
            bg = np.repeat(np.tile(gT, len(bv)), 49)
            def sc(L, grp_q=None):
                out = {'max': [], 'mean': [], 'p75': []}
                for i in range(0, len(L), 20):
                    S = L[i:i + 20] @ B.T  # [b,49,nb]
                    if grp_q is not None:
                        S = np.where(grp_q[i:i + 20, None, None] == bg[None, None, :], -np.inf, S)
                    d = 1 - S.max(2)  # [b,49]
                    out['max'].append(d.max(1)); out['mean'].append(d.mean(1)); out['p75'].append(np.percentile(d, 75, axis=1))
                return {k: np.concatenate(v) for k, v in out.items()}
            loo = sc(banks['center'], gT); q = sc(loc(Q)); o15 = sc(loc(F, O15))
            for agg in ('max', 'p75', 'mean'):
                finish(f'e3 patch-kNN {agg} ' + '+'.join(bv), loo[agg], q[agg], o15[agg], (B.shape[0], 512),
                       160 * (len(bv) - 1))

    CROPS4 = ['c08_tl', 'c08_tr', 'c08_bl', 'c08_br']
    vsets = [('', ('center',), 0), (' +flip', ('center', 'flip'), 160)]
    if all(v in nviews_avail for v in CROPS4):
        vsets += [(' +4corners0.8', ('center', *CROPS4), 640),
                  (' +flip+4corners0.8', ('center', 'flip', *CROPS4), 800)]
    if 'c07' in nviews_avail:
        vsets += [(' +c0.7', ('center', 'c07'), 160), (' +flip+c0.7', ('center', 'flip', 'c07'), 320)]
        if all(v in nviews_avail for v in CROPS4):
            vsets += [(' +4corners+c0.7', ('center', *CROPS4, 'c07'), 800),
                      (' +flip+4corners+c0.7', ('center', 'flip', *CROPS4, 'c07'), 960)]
    if 'stretch' in nviews_avail:
        vsets += [(' +stretch', ('center', 'stretch'), 160), (' +flip+stretch', ('center', 'flip', 'stretch'), 320)]
        if len(nviews_avail) == len(VIEWS):
            vsets += [(' +all7 views', ('center', 'flip', *VIEWS), 1120)]

    print('\n== a. shipped baseline: kNN1 cosine, L2n GAP(block5_pool), bank = 160 centre crops')
    evaluate('a kNN1 g5 (shipped)', 'g5')

    print('\n== b. augmented reference bank (kNN1 g5); LOO drops the whole group incl. all its views')
    for sfx, vs, np_ in vsets[1:]:
        evaluate('b kNN1 g5' + sfx, 'g5', vs, train_passes=np_)

    print('\n== c. pooled-feature concatenations (kNN1 cosine)')
    for key in ['m5', 'g5m5', 'g4g5', 'g4g5m5', 'g4g5m4m5', 'g5c', 'gem3']:
        evaluate(f'c kNN1 {key}', key)

    print('\n== d. k-th nearest / mean of k nearest (g5, and best feature sets)')
    for key in ['g5', 'g4g5', 'sqrt_g4g5']:
        for k in (2, 3, 5):
            evaluate(f'd kNN{k}th {key}', key, k=k)
        evaluate(f'd mean-top3 {key}', key, k=3, mode='mean')

    print('\n== e. power / sqrt normalisation before cosine')
    for key in ['sqrtg5', 'pow.3g5', 'sqrtm5', 'sqrt_g5m5', 'sqrt_g4g5', 'sqrt_g4g5m5']:
        evaluate(f'e kNN1 {key}', key)

    print('\n== e2. local scaling: score = min_j d(q,b_j) / r_j, r_j = bank photo j\'s own LOO NN distance '
          '(one extra float per bank row; r recomputed without the left-out group)')
    for key in ['g5', 'sqrtg5', 'g4g5', 'g5m5', 'g4g5m5', 'g4g5m4m5']:
        for sfx, vs, np_ in vsets:
            if sfx in ('', ' +flip', ' +stretch', ' +flip+stretch') or sfx.startswith(' +flip+4corners'):
                evaluate_ls(f'e2 kNN1/r {key}' + sfx, key, vs, np_)

    print('\n== e3. patch kNN (PatchCore-like) on the 7x7 block5_pool map, L2n per position; bank = 160x49 positions')
    patch_knn()

    print('\n== combinations: feature x bank x k')
    for key in ['sqrtg5', 'g4g5', 'sqrt_g4g5', 'g5m5', 'sqrt_g5m5', 'g4g5m5', 'g4g5m4m5', 'sqrt_g4g5m5', 'gem3']:
        for sfx, vs, np_ in vsets[1:]:
            evaluate(f'kNN1 {key}' + sfx, key, vs, train_passes=np_)
    for key in ['g4g5m5', 'g4g5m4m5']:
        for k in (2, 3):
            evaluate(f'd kNN{k}th {key}', key, k=k)
    for key in ['g5', 'sqrtg5', 'g4g5', 'sqrt_g4g5', 'sqrt_g4g5m5', 'g4g5m4m5']:
        for sfx, vs, np_ in vsets[1:]:
            if len(vs) >= 3:
                for k in (2, 3):
                    evaluate(f'kNN{k}th {key}' + sfx, key, vs, k=k, train_passes=np_)

    from collections import Counter
    cnt = Counter(p for r in ROWS for p in r['refused_tgt'])
    print(f'\n== field targets refused most often over the {len(ROWS)} variants above:')
    for p, c in cnt.most_common(12):
        print(f'  {c:3d}/{len(ROWS)}  {p}')
    print('refused targets of the shipped baseline:', ROWS[0]['refused_tgt'])
    SUMMARY = ['a kNN1 g5 (shipped)', 'b kNN1 g5 +flip', 'b kNN1 g5 +flip+4corners0.8', 'b kNN1 g5 +flip+4corners+c0.7',
               'b kNN1 g5 +stretch', 'b kNN1 g5 +all7 views', 'c kNN1 m5', 'c kNN1 g5m5', 'c kNN1 g4g5', 'c kNN1 g4g5m5',
               'c kNN1 g4g5m4m5', 'c kNN1 gem3', 'd kNN3th g5', 'd mean-top3 g5', 'd kNN2th g4g5m4m5', 'e kNN1 sqrtg5',
               'e kNN1 sqrt_g4g5', 'e2 kNN1/r g5 +flip', 'e2 kNN1/r sqrtg5 +flip', 'e2 kNN1/r g4g5', 'e2 kNN1/r g4g5m4m5',
               'e3 patch-kNN mean center', 'kNN1 g4g5m5 +flip', 'kNN1 g4g5m4m5 +flip', 'kNN1 g4g5m4m5 +flip+4corners+c0.7',
               'kNN2th g4g5m4m5 +flip+c0.7']
    print('\n== summary (threshold = p97.5 of LOO scores of all 160 flowers17 targets)')
    print(f"{'variant':40s} {'oth%':>5s} {'tgt%':>5s} {'AUROC':>6s} {'f17oth%':>7s} {'bank':>10s} {'floats':>8s} {'+passes':>7s}  refused field targets")
    byname = {r['name']: r for r in ROWS}
    for n in SUMMARY:
        r = byname.get(n)
        if r:
            print(f"{n:40s} {r['oth']:5.1f} {r['tgt']:5.1f} {r['auc']:6.3f} {r['o15']:7.1f} {r['bank']:>10s} {r['floats']:8d} {r['passes']:7d}  "
                  + ', '.join(x[:14] for x in r['refused_tgt']))

    # stability ---------------------------------------------------------------
    from sklearn.model_selection import StratifiedGroupKFold
    STAB = os.environ.get('STAB', '')
    cfgs = [('kNN1 g5 (shipped)', 'g5', ('center',), 1)]
    for spec in [s for s in STAB.split(';') if s]:
        nm, key, vs, k = spec.split('|')
        cfgs.append((nm, key, tuple(vs.split(',')), int(k)))
    print('\n== threshold stability: 20 random 128/32 StratifiedGroupKFold splits; bank = 128 train photos (+views), '
          'LOO thr p97.5 on the 128; cells: mean±sd [min-max]')
    for nm, key, vs, k in cfgs:
        vs = tuple(v for v in vs if v in ('center', 'flip') or v in nviews_avail)
        out = []
        for seed in range(20):
            tr, va = next(StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(ti, lab[ti], gT))
            loo, q, o15, _ = run(key, vs, k, 'kth', idx=tr) if k > 0 else local_scale(key, vs, idx=tr)
            t = np.percentile(loo, 97.5)
            out.append((pct(q[QO] > t), pct(q[QT] > t), pct(o15 > t), t))
        a = np.array(out)
        f = lambda c: f'{a[:,c].mean():4.1f}±{a[:,c].std():3.1f} [{a[:,c].min():.1f}-{a[:,c].max():.1f}]'
        print(f'{nm:40s} field oth {f(0)} | field tgt {f(1)} | f17 oth {f(2)} | thr sd/mean {a[:,3].std()/a[:,3].mean():.3f}')


if __name__ == '__main__':
    {'extract': extract, 'analyze': analyze}[sys.argv[1]]()

"""Fourth round of the open-set study (2026-12-07, evening): power-normalised parts of the
descriptor (each part raised to a power before its L2 norm, which lifts weak channels), with
field views of the training photos in the reference bank (as the trainer draws them:
trainer/src/data/augment.rs, subject at 59-100% of the frame, "v07", or at 29-100%, "v25", two
draws each), and thresholds calibrated on held-out views instead of held-out photos. Inputs:
regions.py's maps (run `regions.py extract` first).

  .deps/venv/bin/python bench/openset/power_views.py extract   # 4 view sets of the 160 photos (~4 min, 2 threads)
  .deps/venv/bin/python bench/openset/power_views.py analyze   # the tables
"""
import sys, time
import numpy as np
import regions as R

VIEWS = [('v07a', 0.7, 1), ('v07b', 0.7, 2), ('v25a', 2.5, 3), ('v25b', 2.5, 4)]


def mirror(v, size):
    last = size - 1
    m = np.mod(v, 2 * last)
    return np.where(m > last, 2 * last - m, m)


def field_view(img, rng, zoom):
    """One `field` view: one zoom factor from [1, 1 + zoom], up to 15% off centre, tilted up to 20
    degrees, flipped half the time, the photo mirrored around it; bilinear."""
    h, w, _ = img.shape
    flip, f = rng.random() < 0.5, 1 + rng.uniform(0, zoom)
    shift = [rng.uniform(-0.15, 0.15) * w, rng.uniform(-0.15, 0.15) * h]
    rot = np.radians(rng.uniform(-20, 20))
    cx, cy = (w - 1) / 2, (h - 1) / 2
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = x - cx, y - cy
    sx = (np.cos(rot) * dx - np.sin(rot) * dy) * f + cx + shift[0]
    sy = (np.sin(rot) * dx + np.cos(rot) * dy) * f + cy + shift[1]
    if flip:
        sx = w - 1 - sx
    sx, sy = np.clip(mirror(sx, w), 0, w - 1), np.clip(mirror(sy, h), 0, h - 1)
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return np.round(top * (1 - fy) + bottom * fy)


def extract():
    import onnxruntime as ort
    from PIL import Image, ImageOps
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(f'{R.OUT}/trunk_block4.onnx', so, providers=['CPUExecutionProvider'])

    def square(p):
        im = ImageOps.exif_transpose(Image.open(p)).convert('RGB')
        w, h = im.size
        s = min(w, h)
        l, t = (w - s) // 2, (h - s) // 2
        return np.asarray(im.crop((l, t, l + s, t + s)).resize((224, 224), Image.BILINEAR), np.float32)

    paths = list(np.load(f'{R.OUT}/maps_tgt.npz')['paths'])
    images = [square(f'{R.SHARED}/data/{p}') for p in paths]
    for name, zoom, seed in VIEWS:
        rng, t0, b4, b5 = np.random.default_rng(seed), time.time(), [], []
        views = [field_view(im, rng, zoom) for im in images]
        for i in range(0, len(views), 8):
            batch = np.stack([(v[:, :, ::-1] - R.MEAN_BGR).transpose(2, 0, 1).astype(np.float32) for v in views[i:i + 8]])
            f5, f4 = sess.run(['features', 'block4_pool'], {'image': batch})
            b4.append(f4.astype(np.float16))
            b5.append(f5.astype(np.float16))
        np.savez(f'{R.OUT}/maps_{name}.npz', paths=np.array(paths), b4=np.concatenate(b4), b5=np.concatenate(b5))
        print(name, f'{time.time() - t0:.0f}s', flush=True)


def analyze():
    load = lambda n: (lambda z: (z['b4'].astype(np.float32), z['b5'].astype(np.float32)))(np.load(f'{R.OUT}/maps_{n}.npz'))
    maps = {n: load(n) for n in ['tgt', 'field', 'f17o'] + [v[0] for v in VIEWS]}
    paths = list(np.load(f'{R.OUT}/maps_tgt.npz')['paths'])
    field_paths = list(np.load(f'{R.OUT}/maps_field.npz')['paths'])
    group = R.near_duplicate_groups(paths)
    target = np.array([p.split('/')[1] != 'other' for p in field_paths])

    def parts(name, power):
        return [p if w == 1 else R.nz(np.power(p, w)) for p, w in zip(R.parts(*maps[name]), power)]

    def best_cosine(queries, bank, exclude=None):
        cos = sum(q @ b.T for q, b in zip(queries, bank)) / len(queries)
        return cos if exclude is None else np.where(exclude, -9, cos)

    def row(power, bank_views, calibrate_on):
        sets = ['tgt'] + bank_views
        bank = [np.concatenate(ps) for ps in zip(*[parts(n, power) for n in sets])]
        bank_group = np.concatenate([group] * len(sets))
        held_out = np.concatenate([1 - best_cosine(parts(c, power), bank, group[:, None] == bank_group[None, :]).max(1) for c in calibrate_on])
        threshold = np.sort(held_out)[int(np.ceil(0.975 * len(held_out))) - 1]
        s = 1 - best_cosine(parts('field', power), bank).max(1)
        so = 1 - best_cosine(parts('f17o', power), bank).max(1)
        ranked = np.sort(s[target])[::-1]
        at = ' / '.join(f'{100 * (s[~target] > ranked[k]).mean():.0f}' for k in range(4))
        auroc = (s[~target][:, None] > s[target][None, :]).mean()
        print(f'| {power} | {" + ".join(["photos"] + bank_views)} | {" + ".join(c.replace("tgt", "photos") for c in calibrate_on)} '
              f'| {threshold:.4f} | {(s[target] > threshold).sum()} / {100 * (s[~target] > threshold).mean():.1f}% | {auroc:.3f} '
              f'| {100 * (so > threshold).mean():.1f}% | {at} |', flush=True)

    print('| part powers | references | threshold from (held out) | threshold | targets / `other` refused | AUROC | flowers17 others | `other` at 0 / 1 / 2 / 3 targets |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for power in [(1, 1, 1, 1), (1, 1, 0.5, 0.5), (1, 0.5, 1, 0.5), (0.75, 0.75, 0.75, 0.75)]:
        for bank_views in [[], ['v07a'], ['v07b'], ['v25a'], ['v25b'], ['v07a', 'v25a'], ['v07b', 'v25b']]:
            row(power, bank_views, ['tgt'])
    for power in [(1, 1, 1, 1), (1, 1, 0.5, 0.5)]:
        for bank_views, calibrate_on in [(['v07a'], ['v07b']), (['v07b'], ['v07a']), (['v07a', 'v25a'], ['v07b', 'v25b']), (['v07b', 'v25b'], ['v07a', 'v25a'])]:
            row(power, bank_views, calibrate_on)


if __name__ == '__main__':
    {'extract': extract, 'analyze': analyze}[sys.argv[1]]()

"""Third round of the open-set study (2026-12-07): does a score read from parts of the frame
refuse fewer field targets? For each photo the block-4 and block-5 maps are kept whole; the
score is the shipped one (1 - the largest cosine to a reference photo, over the descriptor of
blocks 4 and 5 pooled by average and max) computed on sub-windows of the 7 x 7 grid too, the
lowest kept. Also: the four parts of the descriptor weighted unequally. Threshold: the 97.5th
percentile of leave-one-out scores of the 160 training photos (near-duplicate groups left out
together), as the trainer does; references: the 160 photos, no views.

  .deps/openset-venv/bin/python bench/openset/regions.py extract   # maps -> $OSR_DIR/maps_*.npz (~2 min, 2 threads)
  .deps/openset-venv/bin/python bench/openset/regions.py analyze   # the table
"""
import glob, os, sys, time
import numpy as np

SHARED = os.environ.get('FLOWERCAM_SHARED', '../shared')
OUT = os.environ.get('OSR_DIR', '.deps/openset')
MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def extract():
    import onnx, onnxruntime as ort
    from onnx import helper, TensorProto
    from PIL import Image, ImageOps
    os.makedirs(OUT, exist_ok=True)
    m = onnx.load(f'{SHARED}/weights/vgg16_imagenet_trunk.onnx')
    m.graph.output.append(helper.make_tensor_value_info('block4_pool', TensorProto.FLOAT, None))
    path = f'{OUT}/trunk_block4.onnx'
    onnx.save(m, path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(os.environ.get('ORT_THREADS', '2'))
    sess = ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])

    def prep(p):
        im = ImageOps.exif_transpose(Image.open(p)).convert('RGB')
        w, h = im.size
        s = min(w, h)
        l, t = (w - s) // 2, (h - s) // 2
        im = im.crop((l, t, l + s, t + s)).resize((224, 224), Image.BILINEAR)
        return (np.asarray(im, np.float32)[:, :, ::-1] - MEAN_BGR).transpose(2, 0, 1)

    f17, field = f'{SHARED}/data/flowers17', f'{SHARED}/data/field'
    others = sorted(d for d in os.listdir(f17) if os.path.isdir(f'{f17}/{d}') and d not in ('daffodil', 'coltsfoot'))
    sets = {
        'tgt': [p for c in ['daffodil', 'coltsfoot'] for p in sorted(glob.glob(f'{f17}/{c}/*.jpg'))],
        'field': [p for c in ['daffodil', 'coltsfoot', 'other'] for p in sorted(glob.glob(f'{field}/{c}/*'))],
        'f17o': [p for c in others for p in sorted(glob.glob(f'{f17}/{c}/*.jpg'))[:20]],
    }
    for name, paths in sets.items():
        b4, b5, t0 = [], [], time.time()
        for i in range(0, len(paths), 8):
            f5, f4 = sess.run(['features', 'block4_pool'], {'image': np.stack([prep(q) for q in paths[i:i + 8]])})
            b4.append(f4.astype(np.float16))
            b5.append(f5.astype(np.float16))
        rel = np.array([os.path.relpath(q, f'{SHARED}/data') for q in paths])
        np.savez(f'{OUT}/maps_{name}.npz', paths=rel, b4=np.concatenate(b4), b5=np.concatenate(b5))
        print(name, len(paths), f'{time.time() - t0:.0f}s', flush=True)


def nz(v):
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-6)


def parts(b4, b5, r=(0, 7, 0, 7)):
    """The four L2-normalised parts of the descriptor over window r = (y0, y1, x0, x1) of the 7 x 7 grid."""
    y0, y1, x0, x1 = r
    a = b4[:, :, 2 * y0:2 * y1, 2 * x0:2 * x1].reshape(len(b4), 512, -1)
    b = b5[:, :, y0:y1, x0:x1].reshape(len(b5), 512, -1)
    return [nz(a.mean(2)), nz(a.max(2)), nz(b.mean(2)), nz(b.max(2))]


def windows(name):
    full = (0, 7, 0, 7)
    if name == 'full':
        return [full]
    if name.startswith('win'):  # every k x k window, and the whole frame
        k = int(name[3:])
        return [full] + [(y, y + k, x, x + k) for y in range(8 - k) for x in range(8 - k)]
    if name == 'halves':
        return [full, (0, 4, 0, 7), (3, 7, 0, 7), (0, 7, 0, 4), (0, 7, 3, 7)]
    if name == 'lower':
        return [full, (3, 7, 0, 7), (2, 7, 0, 7)]
    raise ValueError(name)


def near_duplicate_groups(paths):
    """A group id for each of `paths` (relative to data/): photos listed together in
    flowers17's near_duplicates.tsv share one."""
    index = {p: i for i, p in enumerate(paths)}
    parent = list(range(len(paths)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a
    for line in open(f'{SHARED}/data/flowers17/near_duplicates.tsv'):
        f = line.rstrip('\n').split('\t')
        if len(f) < 3 or line.startswith(('#', 'group')):
            continue
        a, b = 'flowers17/' + f[1], 'flowers17/' + f[2]
        if a in index and b in index:
            parent[find(index[a])] = find(index[b])
    return np.array([find(i) for i in range(len(paths))])


def shipped(*views):
    """The shipped descriptor (blocks 4 and 5 pooled by average and max, each part normalized, /2)
    of the 160 photos (T), the field set (F), flowers17's other classes (O) and each named draw of
    views, with the photos' near-duplicate groups and labels (0 daffodil) and the field's target mask."""
    def load(name):
        z = np.load(f'{OUT}/maps_{name}.npz')
        return z['paths'], np.concatenate(parts(z['b4'].astype(np.float32), z['b5'].astype(np.float32)), 1) / 2
    paths, T = load('tgt')
    field_paths, F = load('field')
    O = load('f17o')[1]
    group = near_duplicate_groups(paths)
    target = np.array([p.split('/')[1] != 'other' for p in field_paths])
    y = np.array([0 if '/daffodil/' in p else 1 for p in paths])
    return T, F, O, [load(v)[1] for v in views], group, target, y


def analyze():
    load = lambda n: (lambda z: (z['paths'], z['b4'].astype(np.float32), z['b5'].astype(np.float32)))(np.load(f'{OUT}/maps_{n}.npz'))
    tp, t4, t5 = load('tgt')
    fp, f4, f5 = load('field')
    _, o4, o5 = load('f17o')
    group = near_duplicate_groups(tp)
    same_group = group[:, None] == group[None, :]
    target = np.array([p.split('/')[1] != 'other' for p in fp])
    refs = parts(t4, t5)

    def score(q4, q5, rs, w, exclude=None):
        best = np.full(len(q4), np.inf)
        for r in rs:
            cos = sum(wi * (q @ ref.T) for wi, q, ref in zip(w, parts(q4, q5, r), refs)) / sum(w)
            if exclude is not None:
                cos[exclude] = -9
            best = np.minimum(best, 1 - cos.max(1))
        return best

    def row(label, rs, w):
        loo = score(t4, t5, rs, w, same_group)
        threshold = np.sort(loo)[int(np.ceil(0.975 * len(loo))) - 1]
        s, so = score(f4, f5, rs, w), score(o4, o5, rs, w)
        at_two = np.sort(s[target])[-3]  # placed after the fact to refuse 2 targets: compares curves
        auroc = (s[~target][:, None] > s[target][None, :]).mean()
        print(f'| {label} | {threshold:.4f} | {(s[target] > threshold).sum()} / {100 * (s[~target] > threshold).mean():.1f}% '
              f'| {auroc:.3f} | {100 * (so > threshold).mean():.1f}% | {100 * (s[~target] > at_two).mean():.1f}% '
              f'| {", ".join(f"{v:.3f}" for v in np.sort(s[target])[-3:])} |')

    print('| score | threshold | field targets refused / `other` refused | AUROC | flowers17 others refused | `other` at 2 targets | the 3 highest target scores |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for name in ['full', 'win6', 'win5', 'win4', 'halves', 'lower']:
        row(f'windows: {name}', windows(name), [1, 1, 1, 1])
    for w in [(1, 1, 1, 1), (0, 0, 1, 2), (0.5, 0, 0, 2), (1, 0, 0.5, 2)]:
        row(f'part weights {w} (block-4 avg, max, block-5 avg, max)', windows('full'), w)


if __name__ == '__main__':
    {'extract': extract, 'analyze': analyze}[sys.argv[1]]()

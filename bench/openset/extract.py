"""One-pass feature extraction for the open-set study. Writes $OSR_DIR/feats_<set>.npz.

Graph: VGG16 trunk + extra outputs (GlobalAveragePool / GlobalMaxPool nodes added with onnx):
  g4  = GAP(block4_pool)            [512]
  m4  = GMP(block4_pool)            [512]
  g5c = GAP(block5_conv3.relu)      [512]  (before the last pool, 14x14)
  m5c = GMP(block5_conv3.relu)      [512]  (== GMP(block5_pool) mathematically)
  g5  = GAP(features=block5_pool)   [512]
  m5  = GMP(features)               [512]
  f5  = features map                [512,7,7]  (stored float16)
"""
import os, sys, time, glob
import numpy as np, onnx, onnxruntime as ort
from onnx import helper, TensorProto
from PIL import Image, ImageOps
SHARED = os.environ.get('FLOWERCAM_SHARED', '../shared')

W = os.path.join(SHARED, 'weights/vgg16_imagenet_trunk.onnx')
OUT = os.environ.get('OSR_DIR', '.deps/openset')
os.makedirs(OUT, exist_ok=True)
MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def build_model():
    m = onnx.load(W)
    g = m.graph
    extra = []
    for src, tag in [('block4_pool', '4'), ('block5_conv3.relu', '5c'), ('features', '5')]:
        for op, p in [('GlobalAveragePool', 'g'), ('GlobalMaxPool', 'm')]:
            name = f'{p}{tag}'
            g.node.append(helper.make_node(op, [src], [name + '_4d'], name=name + '_pool'))
            g.node.append(helper.make_node('Flatten', [name + '_4d'], [name], name=name + '_flat', axis=1))
            g.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ['N', 512]))
            extra.append(name)
    onnx.checker.check_model(m)
    p = os.path.join(OUT, 'trunk_multi.onnx')
    onnx.save(m, p)
    return p, ['features'] + extra


def preprocess(path, flip=False):
    im = Image.open(path)
    im = ImageOps.exif_transpose(im)
    im = im.convert('RGB')
    w, h = im.size
    s = min(w, h)
    l, t = (w - s) // 2, (h - s) // 2
    im = im.crop((l, t, l + s, t + s)).resize((224, 224), Image.BILINEAR)
    if flip:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    a = np.asarray(im, np.float32)[:, :, ::-1] - MEAN_BGR  # RGB->BGR, minus mean
    return a.transpose(2, 0, 1)


def run(sess, outs, items, name, flip=False, bs=8):
    res = {k: [] for k in outs}
    t0 = time.time()
    for i in range(0, len(items), bs):
        x = np.stack([preprocess(p, flip) for p in items[i:i + bs]])
        r = sess.run(outs, {'image': x})
        for k, v in zip(outs, r):
            res[k].append(v.astype(np.float16) if k == 'features' else v)
        if i % 80 == 0:
            print(name, i, len(items), f'{time.time()-t0:.0f}s', flush=True)
    d = {('f5' if k == 'features' else k): np.concatenate(v) for k, v in res.items()}
    return d


def main():
    mp, outs = build_model()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(os.environ.get("ORT_THREADS", "1"))
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(mp, so, providers=['CPUExecutionProvider'])
    F17 = os.path.join(SHARED, 'data/flowers17')
    classes = sorted(d for d in os.listdir(F17) if os.path.isdir(os.path.join(F17, d)))
    sets = {}
    # flowers17
    paths, labels = [], []
    for c in classes:
        for p in sorted(glob.glob(f'{F17}/{c}/*.jpg')):
            paths.append(p); labels.append(c)
    sets['f17'] = (paths, labels, False)
    tgt = [(p, l) for p, l in zip(paths, labels) if l in ('daffodil', 'coltsfoot')]
    sets['f17flip'] = ([p for p, _ in tgt], [l for _, l in tgt], True)
    FD = os.path.join(SHARED, 'data/field')
    fp, fl = [], []
    for c in ['daffodil', 'coltsfoot', 'other']:
        for p in sorted(glob.glob(f'{FD}/{c}/*')):
            fp.append(p); fl.append(c)
    sets['field'] = (fp, fl, False)
    order = sys.argv[1:] or ['field', 'f17', 'f17flip']
    for name in order:
        paths, labels, flip = sets[name]
        fn = f'{OUT}/feats_{name}.npz'
        if os.path.exists(fn):
            print('skip', fn); continue
        d = run(sess, outs, paths, name, flip)
        rel = [os.path.relpath(p, os.path.join(SHARED, 'data')) for p in paths]
        np.savez(fn, paths=np.array(rel), labels=np.array(labels), **d)
        print('wrote', fn, {k: v.shape for k, v in d.items()}, flush=True)


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""The job `trainer train` does, written as the plain PyTorch script a user would write instead.

Same data, same VGG16 ImageNet weights (read from the same ONNX trunk), same preprocessing
(Keras caffe: BGR, 0-255, minus the ImageNet mean, stretched to the input size with a bilinear
filter), same GAP head (GAP -> Dense 256 -> ReLU -> Dropout 0.5 -> Dense K), Adam 1e-3, batch 16,
30 epochs at most, early stopping after 6 epochs without a better validation result (higher
accuracy, then lower loss), the best epoch kept. With --split it uses the exact split our run made.

Modes:
  frozen   the trunk is frozen but runs on every batch of every epoch (no feature cache):
           what a straightforward script does.
  cached   trunk features computed once, then the head trains on them (what `trainer` does).
  recipe   the original Keras recipe: Flatten -> Dense 1024 -> Dropout -> Dense 1024 -> Dense K,
           the first 3 convolutions frozen, trained through the rest of the trunk, SGD 1e-4
           momentum 0.9, random horizontal flips (use --epochs 1 to time one epoch).

A benchmark tool, not part of the product. Prints one JSON line (--json) or a short report.
"""

import argparse
import csv
import json
import os
import random
import sys
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from PIL import Image, ImageOps
from torch import nn

VGG16_BLOCKS = [2, 2, 3, 3, 3]
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def load_trunk(path):
    """VGG16's 13 convolutions from an ONNX trunk, in graph order."""
    model = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"][:13]
    if len(convs) != 13:
        sys.exit(f"{path}: expected 13 Conv nodes, found {len(convs)}")
    layers, k = [], 0
    for block in VGG16_BLOCKS:
        for _ in range(block):
            w, b = init[convs[k].input[1]], init[convs[k].input[2]]
            conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
            conv.weight.data = torch.from_numpy(w.copy())
            conv.bias.data = torch.from_numpy(b.copy())
            layers += [conv, nn.ReLU(inplace=True)]
            k += 1
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def load_image(path, size):
    """EXIF-rotated RGB, stretched to size x size (bilinear), as caffe CHW float32."""
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((size, size), Image.BILINEAR)
    bgr = np.asarray(img, dtype=np.float32)[:, :, ::-1] - CAFFE_MEAN_BGR
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))


def split_of(args, classes):
    """(train, val) lists of (path, class index)."""
    if args.split:
        train, val = [], []
        with open(args.split) as f:
            for row in csv.DictReader(f):
                if row["class"] not in classes:
                    continue
                item = (os.path.join(args.data, row["image"]), classes.index(row["class"]))
                {"train": train, "val": val}.get(row["split"], []).append(item)
        return train, val
    rng = random.Random(args.seed)
    train, val = [], []
    for c, name in enumerate(classes):
        files = sorted(os.listdir(os.path.join(args.data, name)))
        rng.shuffle(files)
        n_val = max(1, round(len(files) * args.val_fraction))
        items = [(os.path.join(args.data, name, f), c) for f in files]
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def head(kind, channels, size, k):
    if kind == "gap":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, k))
    s = size // 32
    return nn.Sequential(
        nn.Flatten(), nn.Linear(channels * s * s, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, k)
    )


def evaluate(forward, x, y, batch):
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            logits = forward(x[i : i + batch])
            loss += loss_fn(logits, y[i : i + batch]).item()
            correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
    return loss / len(y), correct / len(y)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--backbone", required=True, help="VGG16 ONNX trunk (the one trainer uses)")
    p.add_argument("--classes", default="daffodil,coltsfoot")
    p.add_argument("--mode", choices=["frozen", "cached", "recipe"], default="frozen")
    p.add_argument("--split", help="split.csv of a trainer run, to use the same validation images")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice, all cores)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    classes = args.classes.split(",")
    size = args.input_size

    trunk = load_trunk(args.backbone).eval().to(device)
    train, val = split_of(args, classes)
    xt = torch.stack([load_image(f, size) for f, _ in train]).to(device)
    yt = torch.tensor([c for _, c in train]).to(device)
    xv = torch.stack([load_image(f, size) for f, _ in val]).to(device)
    yv = torch.tensor([c for _, c in val]).to(device)
    loaded = time.perf_counter()

    if args.mode == "recipe":
        model_head = head("flatten", 512, size, len(classes)).to(device)
        for layer in [m for m in trunk if isinstance(m, nn.Conv2d)][:3]:
            layer.requires_grad_(False)
        params = [q for q in list(trunk.parameters()) + list(model_head.parameters()) if q.requires_grad]
        optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
        modules = [trunk, model_head]

        def train_forward(x):
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            return model_head(trunk(x))

        def eval_forward(x):
            return model_head(trunk(x))
    else:
        trunk.requires_grad_(False)
        model_head = head("gap", 512, size, len(classes)).to(device)
        optimizer = torch.optim.Adam(model_head.parameters(), lr=1e-3)
        modules = [model_head]
        if args.mode == "cached":
            with torch.no_grad():
                ft = torch.cat([trunk(xt[i : i + args.batch_size]) for i in range(0, len(yt), args.batch_size)])
                fv = torch.cat([trunk(xv[i : i + args.batch_size]) for i in range(0, len(yv), args.batch_size)])
            xt, xv = ft, fv

            def train_forward(x):
                return model_head(x)

            eval_forward = train_forward
        else:

            def train_forward(x):
                with torch.no_grad():
                    f = trunk(x)
                return model_head(f)

            eval_forward = train_forward

    loss_fn = nn.CrossEntropyLoss()
    best, best_state, since_best, history = None, None, 0, []
    for epoch in range(1, args.epochs + 1):
        for m in modules:
            m.train()
        if args.mode != "recipe":
            trunk.eval()
        order = torch.randperm(len(yt), device=device)
        for i in range(0, len(yt), args.batch_size):
            idx = order[i : i + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(train_forward(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
        for m in modules + [trunk]:
            m.eval()
        val_loss, val_acc = evaluate(eval_forward, xv, yv, args.batch_size)
        history.append({"epoch": epoch, "val_loss": val_loss, "val_accuracy": val_acc})
        print(f"epoch {epoch}: val loss {val_loss:.4f} acc {val_acc:.3f}", file=sys.stderr)
        if best is None or (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"]):
            best, since_best = history[-1], 0
            best_state = [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]
        else:
            since_best += 1
            if since_best >= args.patience:
                break
    for m, state in zip(modules, best_state):
        m.load_state_dict(state)
    result = {
        "engine": "pytorch",
        "mode": args.mode,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "train_images": len(yt),
        "val_images": len(yv),
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "val_accuracy": best["val_accuracy"],
        "val_loss": best["val_loss"],
        "load_seconds": loaded - started,
        "total_seconds": time.perf_counter() - started,
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

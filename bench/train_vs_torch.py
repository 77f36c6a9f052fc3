#!/usr/bin/env python3
"""Training benchmark: `trainer train` against the PyTorch reference (bench/torch_reference.py),
alternating, on the same data, weights and validation split.

Each round runs, in turn:
  ours          trainer train with an empty feature cache (the whole job: scan, near-duplicate
                check, features, head, export with the tract parity gate)
  ours-no-export  the same without the export, which the reference does not do either
  torch-frozen  the reference with a frozen trunk run on every batch (no feature cache)
  torch-cached  the reference computing trunk features once
and with --recipe also the original recipe for one epoch (first 3 convolutions frozen, trained
through the trunk) in ours and in PyTorch.

Wall time and peak memory (max RSS of the process, from wait4) are measured here from the
outside; accuracy is what each reports for its best epoch. Prints a table of medians and the
ratios, and writes every run to --out as JSON.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(cmd, env=None):
    """Runs cmd; returns (wall seconds, peak RSS MiB, last stdout line parsed as JSON)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{text[-2000:]}")
    return wall, usage.ru_maxrss / 1024, json.loads(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("FLOWERCAM_DATA", "../shared/data/flowers17"))
    p.add_argument("--backbone", default=os.environ.get("FLOWERCAM_BACKBONE", "../shared/weights/vgg16_imagenet_trunk.onnx"))
    p.add_argument("--classes", default="daffodil,coltsfoot")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--recipe", action="store_true", help="also time one epoch of the original recipe in both")
    p.add_argument(
        "--torch-modes",
        default="frozen,cached",
        help="which reference runs to time: frozen (the trunk on every batch, ~14 min a round on 2 cores), cached",
    )
    p.add_argument("--trainer", default="target/release/trainer")
    p.add_argument("--work", default="runs/bench-training", help="run folders of our trainer")
    p.add_argument("--out", default="bench/results/training.json")
    args = p.parse_args()
    python = sys.executable
    reference = os.path.join(ROOT, "bench", "torch_reference.py")
    common = ["--data", args.data, "--backbone", args.backbone, "--classes", args.classes]
    runs = []

    def record(name, cmd, parse):
        wall, rss, out = measure(cmd)
        row = {"name": name, "round": r, "wall_seconds": wall, "peak_rss_mib": rss, **parse(out)}
        runs.append(row)
        print(f"round {r} {name:14s} {wall:7.1f} s {rss:7.0f} MiB  val acc {row['val_accuracy']:.4f}", file=sys.stderr)

    def ours(out):
        return {"val_accuracy": out["val"]["accuracy"], "epochs_run": out["epochs_run"], "phases": out["seconds"]}

    def torch(out):
        return {"val_accuracy": out["val_accuracy"], "epochs_run": out["epochs_run"], "torch": out["torch"], "threads": out["threads"]}

    for r in range(1, args.rounds + 1):
        run_dir = os.path.join(args.work, f"ours_{r}")
        with tempfile.TemporaryDirectory() as cache:
            record(
                "ours",
                [args.trainer, "train", *common, "--out", run_dir, "--cache-dir", cache, "--export-to", run_dir + "_model", "--json"],
                ours,
            )
        with tempfile.TemporaryDirectory() as cache:
            record(
                "ours-no-export",
                [args.trainer, "train", *common, "--out", run_dir + "_no_export", "--cache-dir", cache, "--no-export", "--json"],
                ours,
            )
        split = os.path.join(run_dir, "split.csv")
        for mode in args.torch_modes.split(","):
            record(f"torch-{mode}", [python, reference, *common, "--mode", mode, "--split", split, "--json"], torch)
        if args.recipe:
            recipe_dir = os.path.join(args.work, f"recipe_{r}")
            recipe = ["--head", "flatten", "--freeze-first", "3", "--optimizer", "sgd", "--augmentation", "keras", "--epochs", "1"]
            record("ours-recipe", [args.trainer, "train", *common, *recipe, "--out", recipe_dir, "--no-export", "--json"], ours)
            record("torch-recipe", [python, reference, *common, "--mode", "recipe", "--epochs", "1", "--split", split, "--json"], torch)

    names = list(dict.fromkeys(r["name"] for r in runs))
    med = {n: {k: statistics.median(x[k] for x in runs if x["name"] == n) for k in ["wall_seconds", "peak_rss_mib", "val_accuracy"]} for n in names}
    print(f"median of {args.rounds} alternating rounds, {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"| run | wall s | peak MiB | val acc |")
    print("|---|---|---|---|")
    for n in names:
        m = med[n]
        print(f"| {n} | {m['wall_seconds']:.1f} | {m['peak_rss_mib']:.0f} | {m['val_accuracy']:.4f} |")
    for n in names:
        if n.startswith("torch"):
            bases = ["ours-recipe"] if "recipe" in n else ["ours", "ours-no-export"]
            for base in bases:
                print(f"{n} / {base}: {med[n]['wall_seconds'] / med[base]['wall_seconds']:.1f}x the time")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "runs": runs, "medians": med}, f, indent=1)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Inference benchmark: `edge bench` (tract) against onnxruntime on the same exported ONNX,
alternating runs, same thread count, for every bundle given; then the accuracy-vs-latency plot.

For each round, each bundle and each thread count: tract, then onnxruntime (bench/ort_bench.py),
each a fresh process with its warm-up. Medians over rounds of each run's median latency.
Accuracy is the validation accuracy of the exported graph in tract, measured by the export's
parity gate and stored in the bundle: the accuracy the device delivers, int8 included. With
--field DIR, each bundle whose labels are all folders of DIR is also scored there by
`trainer evaluate` (photos from other sources: top class right, answered right, refusals), and
the plot shows that instead: validation photos from the training collection flatter every point.

usage: inference_bench.py models/*.bundle [--threads 1,2] [--rounds 3] [--out bench/results] [--field DIR]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json(cmd, env=None):
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=None if env is None else {**os.environ, **env})
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundles", nargs="+")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=20, help="timed runs per process")
    p.add_argument("--edge", default="target/release/edge")
    p.add_argument("--trainer", default="target/release/trainer")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--field", help="class folders from other sources (e.g. ../shared/data/field) to score each bundle on")
    p.add_argument("--im2col", action="store_true",
                   help="also time tract with its own im2col convolutions (FLOWERCAM_CONV=im2col), the edge's engine before Winograd's")
    p.add_argument("--plot-only", action="store_true", help="no timing: re-read the bundles' accuracy, reprint and replot OUT/inference.json")
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    models = {}
    for b in args.bundles:
        m = run_json([args.trainer, "inspect", "--json", b])["manifest"]
        models[b] = {
            "name": m["name"],
            "classes": len(m["labels"]),
            "input_size": m["preprocessing"]["input_size"],
            "precision": m.get("precision", "f32"),
            "head": m["head"],
            # The exported graph's own accuracy in tract (int8 may differ from the trainer's).
            "val_accuracy": m["parity"]["accuracy"],
            "val_images": m["training"]["val_images"],
            # Held-out accuracy where the head was cross-validated (the refitted head has seen the
            # validation photos, so the gate's accuracy on them is no held-out figure).
            "cv_accuracy": (m.get("cross_validation") or {}).get("mean_accuracy"),
            "trunk": trunk_name(m["backbone"]),
            "trunk_gmac": m["backbone"]["macs"] / 1e9,
        }
    if args.field:
        folders = {d for d in os.listdir(args.field) if os.path.isdir(os.path.join(args.field, d))}
        for b in args.bundles:
            labels = run_json([args.trainer, "inspect", "--json", b])["manifest"]["labels"]
            if set(labels) <= folders:
                r = run_json([args.trainer, "evaluate", "--model", b, "--data", args.field, "--json"])
                models[b].update(
                    field_targets=r["target_images"],
                    field_accuracy=r["accuracy"],
                    field_answered=r["answered_correctly"],
                    field_target_refused=r["target_refused"],
                    field_other_refused=r["other_refused"],
                )
                print(f"field {models[b]['name']}: top {r['accuracy']:.3f}, answered {r['answered_correctly']:.3f}, "
                      f"targets refused {r['target_refused']:.3f}, other refused {r['other_refused']:.3f}", file=sys.stderr)
    path = os.path.join(args.out, "inference.json")
    if args.plot_only:
        with open(path) as f:
            rows = [{**x, **models[x["bundle"]]} for x in json.load(f)["rows"] if x["bundle"] in models]
        for x in rows:  # the field figures of the run that measured, unless --field scored again
            models[x["bundle"]].update({k: v for k, v in x.items() if k.startswith("field_") and k not in models[x["bundle"]]})
        args.rounds = max(x["round"] for x in rows)
    else:
        rows = measure(args, models, threads)
    summarize(args, rows, models, threads, path)


def measure(args, models, threads):
    rows = []
    for r in range(1, args.rounds + 1):
        for b, info in models.items():
            onnx = b[: -len(".bundle")] + ".onnx"
            for t in threads:
                edge = [args.edge, "--threads", str(t), "bench", "--model", b, "--runs", str(args.runs), "--json"]
                results = [("tract", run_json(edge))]
                if args.im2col:
                    results.append(("tract-im2col", run_json(edge, env={"FLOWERCAM_CONV": "im2col"})))
                results.append(("onnxruntime", run_json([sys.executable, "bench/ort_bench.py", onnx, "--threads", str(t), "--runs", str(args.runs)])))
                for engine, res in results:
                    rows.append({**info, "bundle": b, "round": r, "engine": engine, "threads": t, "median_ms": res["median_ms"]})
                said = ", ".join(f"{engine} {res['median_ms']:7.1f} ms" for engine, res in results)
                print(f"round {r} {info['name']:28s} {t} thr: {said}", file=sys.stderr)
    return rows


def summarize(args, rows, models, threads, path):
    table = []
    for b, info in models.items():
        for t in threads:
            times = {e: [x["median_ms"] for x in rows if x["bundle"] == b and x["threads"] == t and x["engine"] == e] for e in ["tract", "tract-im2col", "onnxruntime"]}
            med = {e: statistics.median(v) if v else None for e, v in times.items()}
            table.append({**info, "bundle": b, "threads": t, "tract_ms": med["tract"], "im2col_ms": med["tract-im2col"], "ort_ms": med["onnxruntime"]})
    print(f"median of {args.rounds} alternating rounds x {args.runs} runs; {cpu_model()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    im2col = any(x["im2col_ms"] for x in table)
    print("| model | classes | trunk | GMAC | input | precision | val acc | CV acc | field top / answered / targets refused / other refused | threads | tract ms | tract fps |"
          + (" tract im2col ms |" if im2col else "") + " onnxruntime ms | tract/ort |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if im2col else "") + "---|---|")
    for x in table:
        field = (
            f"{x['field_accuracy']:.3f} / {x['field_answered']:.3f} / {x['field_target_refused']:.3f} / {x['field_other_refused']:.3f}"
            if "field_accuracy" in x
            else "-"
        )
        cv = f"{x['cv_accuracy']:.3f}" if x.get("cv_accuracy") else "-"
        print(
            f"| {x['name']} | {x['classes']} | {x['trunk']} | {x['trunk_gmac']:.2f} | {x['input_size']} | {x['precision']} | {x['val_accuracy']:.3f} | {cv} | {field} | {x['threads']} | "
            f"{x['tract_ms']:.0f} | {1000 / x['tract_ms']:.1f} | " + (f"{x['im2col_ms']:.0f} | " if im2col else "")
            + f"{x['ort_ms']:.0f} | {x['tract_ms'] / x['ort_ms']:.2f} |"
        )
    os.makedirs(args.out, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "cpus": os.cpu_count(), "rows": rows, "medians": table}, f, indent=1)
    os.replace(path + ".tmp", path)
    plot(table, max(threads), os.path.join(args.out, "accuracy_vs_latency.png"))


def trunk_name(backbone):
    """"full", or a slim trunk's share of its teacher's filters and the photos it was distilled on
    ("keep 0.5 / 1360": distilled on 1360 photos)."""
    slim = backbone.get("slimmed_from")
    if not slim:
        return "full"
    # Each block's fraction, read at its first convolution; one figure when they are all alike.
    keep = [f"{backbone['channels'][i] / slim['teacher_channels'][i]:g}" for i in (0, 2, 4, 7, 10)]
    return f"keep {keep[0] if len(set(keep)) == 1 else ','.join(keep)} / {slim['distilled_on']}"


def cpu_model():
    """The CPU's name and whether it has AVX-512 (tract's and onnxruntime's kernels differ)."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return f"{name} ({'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'})"


def accuracy(x):
    """The field set's answered-right share where the bundle was scored there, else the
    cross-validated accuracy, else validation."""
    return x.get("field_answered", x.get("cv_accuracy") or x["val_accuracy"])


def accuracy_source(x):
    return "field, answered right" if "field_answered" in x else "cross-validation" if x.get("cv_accuracy") else "validation"


def plot(table, threads, path):
    """Accuracy against tract latency, one line per (task, trunk, precision), sizes labelled: the field
    set's answered-right share where the bundle was scored there, else validation accuracy;
    GAP and linear heads (the flatten head is a different model, in the table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    series = {}
    for x in table:
        if x["threads"] == threads and x["head"] in ("gap", "linear"):
            series.setdefault((x["classes"], x.get("trunk", "full"), x["precision"]), []).append(x)
    for (classes, trunk, precision), points in sorted(series.items()):
        points.sort(key=lambda x: x["tract_ms"])
        style = "-o" if precision == "f32" else "--s"
        where = accuracy_source(points[0])
        label = f"{classes} classes, {trunk} trunk, {precision} ({where})"
        ax.plot([x["tract_ms"] for x in points], [accuracy(x) for x in points], style, label=label)
        for x in points:
            ax.annotate(f"{x['input_size']}", (x["tract_ms"], accuracy(x)), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ort = [x for x in table if x["threads"] == threads and x["precision"] == "f32" and x["head"] in ("gap", "linear")]
    if ort:
        ax.scatter([x["ort_ms"] for x in ort], [accuracy(x) for x in ort], marker="x", color="gray", label="onnxruntime, same f32 graphs")
    ax.set_xscale("log")  # slim trunks at 112 px and the full trunk at 224 are 40x apart
    ax.set_xlabel(f"latency per frame, ms (median, {threads} threads, this machine; log scale)")
    ax.set_ylabel("accuracy (field photos where scored, else cross-validation)")
    ax.set_title("VGG16 + head: accuracy against latency by input size (labels)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png")
    os.replace(path + ".tmp.png", path)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The CUDA training check: `trainer train --device cuda:0` on the daffodil/coltsfoot and the
17-class tasks, with the PyTorch reference (bench/torch_reference.py) on the same GPU in the same
run as the peer.

Runs, in this order, each with its own time limit, until the overall deadline:
  ours-2              trainer train, defaults, 2 classes, cold feature cache
  torch-cached-2      the reference, trunk features once, on ours-2's split
  ours-17             trainer train, defaults, 17 classes
  torch-frozen-2      the reference, trunk run on every batch of every epoch
  ours-2-as-torch     trainer train with the reference's recipe (stretch, gap head, no CV)
  ours-recipe-2       one epoch through the trunk (flatten head, first 3 convs frozen, SGD)
  torch-recipe-2      the same in the reference
  ours-17-tf32        ours-17 with TF32 allowed in cuDNN (NVIDIA_TF32_OVERRIDE=1)

Wall time and peak memory (max RSS, from wait4) are measured from the outside. Every run's
figures go to --out as JSON (with the machine's CPU and GPU), and each run's output to a log
beside it. A benchmark tool, not part of the product; bench/gpu/README.md says how to run it.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(cmd, log_path, limit, env=None):
    """Runs cmd with a time limit; returns (exit code or None on timeout, wall s, peak RSS MiB)."""
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > limit:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                return None, time.perf_counter() - start, usage.ru_maxrss / 1024
            time.sleep(0.05)
        return os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss / 1024


def tail(path, n=1500):
    with open(path, "rb") as f:
        return f.read()[-n:].decode(errors="replace")


def machine():
    info = {"platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        info["gpu"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], capture_output=True, text=True
        ).stdout.strip()
    except OSError as e:
        info["gpu"] = f"nvidia-smi: {e}"
    return info


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainer", required=True)
    p.add_argument("--data2", required=True, help="class folders holding daffodil/ and coltsfoot/")
    p.add_argument("--data17", help="the 17 class folders")
    p.add_argument("--backbone", required=True)
    p.add_argument("--work", default="/tmp/flowercam-gpu", help="run folders and feature caches")
    p.add_argument("--out", required=True, help="folder for results.json and the logs")
    p.add_argument("--deadline", type=float, default=420, help="seconds; no run starts after it would end")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args()
    started = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    results = {"machine": machine(), "runs": []}
    print(json.dumps(results["machine"]), flush=True)
    reference = os.path.join(ROOT, "bench", "torch_reference.py")
    common2 = ["--data", args.data2, "--backbone", args.backbone, "--classes", "daffodil,coltsfoot"]
    gpu = ["--device", "cuda:0"]
    w = args.work

    def ours(name, data_args, extra, limit):
        run_dir = os.path.join(w, name)
        cmd = [args.trainer, "train", *data_args, *gpu, *extra, "--out", run_dir, "--cache-dir", os.path.join(w, name + "-cache")]
        if "--no-export" not in extra:
            cmd += ["--export-to", run_dir + "-model"]
        return cmd, limit, os.path.join(run_dir, "metrics.json")

    def torch_ref(name, mode, extra, limit):
        split = os.path.join(w, "ours-2", "split.csv")
        return [args.python, reference, *common2, "--mode", mode, "--split", split, "--device", "cuda", "--json", *extra], limit, None

    classes17 = sorted(d for d in os.listdir(args.data17) if os.path.isdir(os.path.join(args.data17, d))) if args.data17 else []
    plan = [
        ("ours-2", *ours("ours-2", common2, [], 150)),
        ("torch-cached-2", *torch_ref("torch-cached-2", "cached", [], 60)),
    ]
    if args.data17:
        data17 = ["--data", args.data17, "--backbone", args.backbone, "--classes", ",".join(classes17)]
        plan.append(("ours-17", *ours("ours-17", data17, [], 300)))
    recipe = ["--head", "flatten", "--freeze-first", "3", "--optimizer", "sgd", "--augmentation", "keras", "--epochs", "1", "--no-export"]
    plan += [
        ("torch-frozen-2", *torch_ref("torch-frozen-2", "frozen", [], 90)),
        ("ours-2-as-torch", *ours("ours-2-as-torch", common2, ["--resize", "stretch", "--head", "gap", "--cv", "0", "--no-export"], 60)),
        ("ours-recipe-2", *ours("ours-recipe-2", common2, recipe, 120)),
        ("torch-recipe-2", *torch_ref("torch-recipe-2", "recipe", ["--epochs", "1"], 60)),
    ]
    if args.data17:
        # The trainer keeps cuDNN in full fp32 (NVIDIA_TF32_OVERRIDE=0) unless told otherwise: this
        # run allows TF32, to show what the parity gate says of it (it failed 17 classes on an H200).
        plan.append(("ours-17-tf32", *ours("ours-17-tf32", data17, [], 120), {**os.environ, "NVIDIA_TF32_OVERRIDE": "1"}))

    for name, cmd, limit, metrics_path, *env in plan:
        elapsed = time.perf_counter() - started
        if elapsed + min(limit, 60) > args.deadline:
            results["runs"].append({"name": name, "skipped": f"deadline ({elapsed:.0f} s used)"})
            continue
        limit = min(limit, args.deadline - elapsed)
        log = os.path.join(args.out, name + ".log")
        code, wall, rss = run(cmd, log, limit, env[0] if env else None)
        record = {"name": name, "cmd": " ".join(cmd), "exit": code, "wall_s": round(wall, 2), "peak_mib": round(rss)}
        if code != 0:
            record["tail"] = tail(log)
        elif metrics_path and os.path.exists(metrics_path):
            with open(metrics_path) as f:
                m = json.load(f)
            record["val_accuracy"] = m.get("val", {}).get("accuracy")
            record["seconds"] = m.get("seconds")
            cv = m.get("cross_validation") or {}
            record["cv_mean_accuracy"] = cv.get("mean_accuracy")
            record["cv_spread"] = cv.get("spread")
        else:
            lines = open(log).read().strip().splitlines()
            try:
                record["reported"] = json.loads(lines[-1])
            except (IndexError, json.JSONDecodeError):
                record["tail"] = tail(log)
        results["runs"].append(record)
        print(json.dumps({k: v for k, v in record.items() if k not in ("cmd", "tail")}), flush=True)
        if "tail" in record:
            print(record["tail"], flush=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Stage-by-stage profile of tlpipe's catsdogs job on a torch-exported backbone:
each stage run alone (`tlpipe run --only STAGE`, in pipeline order, on one
fresh cache), its wall time and the CPU time of its process tree, then a fully
cached run and a rerun with a new learning rate. With --int8 the same for
pipelines/catsdogs-int8.yaml (backbone.quantize after the cut).

    /usr/bin/python3 bench/classic/profile.py [--arch resnet50] [--train-per-class 200] [--test 100] [--int8 | --int8-only]

Run `npm run build` first. Needs Debian's python3-torch and python3-torchvision
(for the export: random weights, torch.manual_seed(0), standing in for
pretrained ones) and the shared fixtures' catsdogs-2k photos. The exported
ONNX file is kept outside the repository, in $TLPIPE_BENCH_MODELS (default
$TMPDIR/tlpipe-bench-models), and reused. Each row includes the start of one
tlpipe process (the first row, `start`, is that alone: `tlpipe --version`).
Opt-in, never in CI. See docs/performance.md.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from compare import CLASSIC, REPO, Timed, busy_seconds, machine, prepare_data, sh, tlpipe_bin  # noqa: F401

STAGES = ["dataset", "backbone", "transform", "freeze", "features", "head", "train", "evaluate", "predictions", "model"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("mobilenet_v2", "resnet50"), default="resnet50")
    p.add_argument("--train-per-class", type=int, default=200)
    p.add_argument("--test", type=int, default=100)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--int8", action="store_true", help="also profile pipelines/catsdogs-int8.yaml")
    p.add_argument("--int8-only", action="store_true", help="profile pipelines/catsdogs-int8.yaml alone (implies --int8)")
    p.add_argument("--fixtures", default=os.environ.get("TLPIPE_FIXTURES", os.path.join(REPO, "..", "shared", "fixtures")))
    return p.parse_args(argv)


def exported_model(arch):
    folder = os.environ.get("TLPIPE_BENCH_MODELS", os.path.join(tempfile.gettempdir(), "tlpipe-bench-models"))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{arch}-torch-seed0.onnx")
    if not os.path.exists(path):
        tmp = path + ".tmp"
        subprocess.run([sys.executable, CLASSIC, "export", "--arch", arch, "--out", tmp], check=True, cwd=REPO)
        os.replace(tmp, path)
    return path


def profile(pipeline, stages, model, data, tmp, epochs):
    cache = os.path.join(tmp, f"cache-{os.path.basename(pipeline)}")
    out_rel = os.path.join("out", "bench-profile", os.path.basename(tmp))
    base = ["node", tlpipe_bin(), "run", pipeline, "--set", f"backbone={model}", "--set", f"data={data}",
            "--set", f"epochs={epochs}", "--set", f"out={out_rel}", "--cache-dir", cache, "--json"]
    rows = [("start (tlpipe --version)", Timed("start", ["node", tlpipe_bin(), "--version"], os.path.join(tmp, "version.log")))]
    for stage in stages:
        rows.append((stage, Timed(stage, base + ["--only", stage], os.path.join(tmp, f"{stage}.json"))))
    rows.append(("all cached", Timed("all cached", base, os.path.join(tmp, "cached.json"))))
    rows.append(("rerun, lr 0.0003", Timed("rerun", base + ["--set", "lr=0.0003"], os.path.join(tmp, "rerun.json"))))
    shutil.rmtree(os.path.join(REPO, out_rel), ignore_errors=True)
    return rows


def table(title, rows):
    total_wall = sum(t.wall for name, t in rows if name in STAGES or name == "quantize")
    total_cpu = sum(t.cpu for name, t in rows if name in STAGES or name == "quantize")
    print(f"\n{title}")
    print("| stage | wall s | CPU s | CPU share of the stages | other processes, cores |")
    print("|---|---:|---:|---:|---:|")
    for name, t in rows:
        share = f"{100 * t.cpu / total_cpu:.0f} %" if name in STAGES or name == "quantize" else ""
        print(f"| {name} | {t.wall:.2f} | {t.cpu:.2f} | {share} | {t.others:.1f} |")
    print(f"| stages together | {total_wall:.2f} | {total_cpu:.2f} | | |")


def main(argv):
    args = parse_args(argv)
    Timed.wait = 0
    tmp = tempfile.mkdtemp(prefix="tlpipe-profile-")
    try:
        data = os.path.join(tmp, "data")
        n = prepare_data(args.fixtures, data, args.train_per_class, args.test)
        model = exported_model(args.arch)
        print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start")
        print(f"tlpipe at {sh('git rev-parse --short HEAD')}; {args.arch} torch export (random weights, seed 0) {os.path.getsize(model) / 1e6:.1f} MB at {model}")
        print(f"data: {n} images ({2 * args.train_per_class} train/val + {args.test} test), {args.epochs} epochs")
        if not args.int8_only:
            table(f"pipelines/catsdogs.yaml, {args.arch} fp32", profile("pipelines/catsdogs.yaml", STAGES, model, data, tmp, args.epochs))
        if args.int8 or args.int8_only:
            stages = STAGES[:4] + ["quantize"] + STAGES[4:]
            table(f"pipelines/catsdogs-int8.yaml, {args.arch} int8", profile("pipelines/catsdogs-int8.yaml", stages, model, data, tmp, args.epochs))
        print("\nCPU = user + sys of the tlpipe process tree (kernel accounting); each row is its own process, start included.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])

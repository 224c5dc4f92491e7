#!/usr/bin/env python3
"""Times the classic PyTorch job (classic.py) against tlpipe's catsdogs pipeline
on the same images and the same architecture, and prints the ratios of wall
time for (1) the full job and (2) a rerun with a changed learning rate.

Run through bench/classic/run.sh (it installs the Python packages, builds
tlpipe and calls this with the repository root as the working directory).
Opt-in, never in CI. See docs/classic-comparison.md.

Both sides use the same randomly initialised weights (torch.manual_seed; no
network, so no pretrained download): wall time does not depend on the weight
values. Accuracy is not compared.
"""
import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLASSIC = os.path.join(HERE, "classic.py")
PIPELINE = "pipelines/catsdogs.yaml"
PIPELINE_INT8 = "pipelines/catsdogs-int8.yaml"
LR_FULL = "0.001"
LR_RERUN = "0.0003"
IDLE_CORES = 0.2


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-per-class", type=int, default=env_int("CLASSIC_TRAIN_PER_CLASS", 200),
                   help="cats and as many dogs in train/ (env CLASSIC_TRAIN_PER_CLASS; default 200)")
    p.add_argument("--test", type=int, default=env_int("CLASSIC_TEST", 100),
                   help="images in test1/ (env CLASSIC_TEST; default 100)")
    p.add_argument("--arch", choices=("mobilenet_v2", "resnet50"), default=os.environ.get("CLASSIC_ARCH", "mobilenet_v2"),
                   help="torchvision architecture on both sides (env CLASSIC_ARCH; default mobilenet_v2)")
    p.add_argument("--epochs", type=int, default=env_int("CLASSIC_EPOCHS", 5))
    p.add_argument("--torch-reps", type=int, default=env_int("CLASSIC_TORCH_REPS", 1),
                   help="repetitions of the PyTorch pair (full job, lr rerun) (env CLASSIC_TORCH_REPS; default 1)")
    p.add_argument("--tlpipe-reps", type=int, default=env_int("CLASSIC_TLPIPE_REPS", 3),
                   help="repetitions of the tlpipe pair, each on a fresh cache (env CLASSIC_TLPIPE_REPS; default 3)")
    p.add_argument("--workers", type=int, default=env_int("CLASSIC_WORKERS", min(2, os.cpu_count() or 1)),
                   help="DataLoader workers of the PyTorch job (default min(2, cores))")
    p.add_argument("--fixtures", default=os.environ.get("TLPIPE_FIXTURES", os.path.join(REPO, "..", "shared", "fixtures")),
                   help="fixtures folder holding datasets/catsdogs-2k (env TLPIPE_FIXTURES)")
    p.add_argument("--wait-idle", type=float, default=float(os.environ.get("CLASSIC_WAIT_IDLE", 300)),
                   help="before each timed command, wait up to this many seconds for the machine to be idle "
                        "(other processes under 0.15 cores for 5 s); 0 to never wait (env CLASSIC_WAIT_IDLE; default 300)")
    p.add_argument("--int8", action="store_true", default=bool(os.environ.get("CLASSIC_INT8")),
                   help="also time tlpipe's pipelines/catsdogs-int8.yaml (backbone.quantize after the cut) on the same export "
                        "(env CLASSIC_INT8=1)")
    p.add_argument("--int8-reps", type=int, default=env_int("CLASSIC_INT8_REPS", 0),
                   help="repetitions of the int8 pair with --int8 (each quantizes again on a fresh cache; default: as --tlpipe-reps)")
    p.add_argument("--torch-rerun", choices=("run", "same"), default=os.environ.get("CLASSIC_TORCH_RERUN", "run"),
                   help="'run': time the PyTorch lr rerun too; 'same': take the full job's times for it (the classic rerun "
                        "is the same script with another lr, so the same work), which halves a long benchmark on a busy machine")
    p.add_argument("--keep", action="store_true", help="keep the temp folder (data, ONNX, caches, logs)")
    return p.parse_args(argv)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine():
    cpu = ""
    for line in sh("lscpu").splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    return f"{sh('nproc')} cores, {cpu or platform.processor()}, {sh('uname -sr')}"


def busy_seconds():
    """CPU seconds the whole machine has spent busy (all cores, all processes), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def prepare_data(fixtures, root, per_class, n_test):
    src = os.path.join(fixtures, "datasets", "catsdogs-2k")
    if not os.path.isdir(os.path.join(src, "train")):
        sys.exit(f"no fixtures at {src} (set TLPIPE_FIXTURES or --fixtures)")
    train, test = os.path.join(root, "train"), os.path.join(root, "test1")
    os.makedirs(train), os.makedirs(test)
    files = []
    for kind in ("cat", "dog"):
        for i in range(per_class):
            name = f"{kind}.{i}.jpg"
            if not os.path.exists(os.path.join(src, "train", name)):
                sys.exit(f"{name} is not in {src}/train: at most 1001 per class there")
            files.append((os.path.join(src, "train", name), os.path.join(train, name)))
    for i in range(1, n_test + 1):
        name = f"{i}.jpg"
        if not os.path.exists(os.path.join(src, "test1", name)):
            sys.exit(f"{name} is not in {src}/test1: at most 1001 there")
        files.append((os.path.join(src, "test1", name), os.path.join(test, name)))
    for s, d in files:
        os.symlink(os.path.realpath(s), d)
    # Read every file once so that neither side pays the cold page cache.
    for s, _ in files:
        with open(s, "rb") as f:
            while f.read(1 << 20):
                pass
    return len(files)


def wait_idle(max_wait, window=5.0, threshold=0.15):
    """Waits until the whole machine is idle for `window` seconds (on a shared
    machine, other people's jobs inflate wall times); gives up after max_wait."""
    if max_wait <= 0:
        return
    t0 = time.perf_counter()
    while True:
        b0 = busy_seconds()
        time.sleep(window)
        used = (busy_seconds() - b0) / window
        if used < threshold:
            return
        if time.perf_counter() - t0 >= max_wait:
            print(f"  (the machine stayed busy, {used:.1f} cores in use by others; timing anyway)", flush=True)
            return


class Timed:
    """A command's wall time measured around it, its CPU time (user + sys of the
    process tree, from the kernel), and how busy the rest of the machine was
    meanwhile (other processes' CPU seconds per second: 0 on an idle machine)."""

    wait = 0.0

    def __init__(self, label, cmd, log, env=None):
        self.label, self.log = label, log
        wait_idle(Timed.wait)
        busy0 = busy_seconds()
        before = os.times()
        t0 = time.perf_counter()
        with open(log, "w") as out, open(log + ".err", "w") as err:
            self.rc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=err, env=env).returncode
        self.wall = time.perf_counter() - t0
        after = os.times()
        self.cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        self.others = max(0.0, (busy_seconds() - busy0 - self.cpu) / self.wall)
        if self.rc != 0:
            sys.stderr.write(f"\n{label} failed (exit {self.rc}); its output:\n")
            for f in (log, log + ".err"):
                with open(f) as fh:
                    sys.stderr.write(fh.read()[-4000:])
            sys.exit(1)
        print(f"  {label:<34} {self.wall:7.1f} s wall  {self.cpu:7.1f} s CPU  (other processes meanwhile: {self.others:.1f} cores)", flush=True)


def torch_job(tmp, data, args, lr, tag):
    out = os.path.join(tmp, f"torch-{tag}.csv")
    cmd = [sys.executable, CLASSIC, "train", "--data", data, "--arch", args.arch, "--lr", lr,
           "--epochs", str(args.epochs), "--workers", str(args.workers), "--out", out]
    return Timed(f"PyTorch {tag}", cmd, os.path.join(tmp, f"torch-{tag}.log"))


def tlpipe_job(tmp, data, onnx, cache, out_rel, args, lr, tag, pipeline=PIPELINE):
    # optimizer=adam: the classic script's recipe (Adam, the learning rate, the
    # epochs), so both sides do the same training; tlpipe's default (L-BFGS,
    # regularisation searched) has no learning rate to change. The int8
    # pipeline trains with Adam already and has no such parameter.
    recipe = ["--set", "optimizer=adam"] if pipeline == PIPELINE else []
    cmd = ["node", tlpipe_bin(), "run", pipeline, *recipe, "--set", f"backbone={onnx}", "--set", f"epochs={args.epochs}",
           "--set", f"data={data}", "--set", f"lr={lr}", "--set", f"out={out_rel}", "--cache-dir", cache, "--json"]
    t = Timed(f"tlpipe {tag}", cmd, os.path.join(tmp, f"tlpipe-{tag}.json"))
    with open(t.log) as f:
        t.summary = json.load(f)
    with open(t.log + ".err") as f:
        t.stderr = f.read()
    return t


def tlpipe_bin():
    """The CLI entry as package.json's `bin` names it (what `npx tlpipe` runs)."""
    with open(os.path.join(REPO, "package.json")) as f:
        return json.load(f)["bin"]["tlpipe"]


def stage(summary, name):
    return next(s for s in summary["stages"] if s["name"] == name)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main(argv):
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="tlpipe-classic-")
    out_rel = os.path.join("out", "bench-classic", os.path.basename(tmp))
    try:
        run(args, tmp, out_rel)
    finally:
        shutil.rmtree(os.path.join(REPO, out_rel), ignore_errors=True)
        try:
            os.rmdir(os.path.join(REPO, "out", "bench-classic"))
        except OSError:
            pass
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp, out_rel):
    import torch
    import torchvision

    Timed.wait = args.wait_idle
    data = os.path.join(tmp, "data")
    n_files = prepare_data(args.fixtures, data, args.train_per_class, args.test)
    node = sh("node --version")
    ort = sh("node -p \"require('./node_modules/onnxruntime-node/package.json').version\"")
    print(f"machine: {machine()}")
    print(f"software: torch {torch.__version__}, torchvision {torchvision.__version__} (Debian), Python {platform.python_version()}; "
          f"node {node}, onnxruntime-node {ort}; tlpipe at {sh('git rev-parse --short HEAD')}"
          f"{' (working tree has uncommitted changes)' if sh('git status --porcelain --untracked-files=no') else ''}")
    print(f"data: {data}: train/ {args.train_per_class} cats + {args.train_per_class} dogs "
          f"(80/20 split: about {round(2 * args.train_per_class * 0.8)} train, {round(2 * args.train_per_class * 0.2)} val), "
          f"test1/ {args.test} images ({n_files} symlinks to {args.fixtures}/datasets/catsdogs-2k; page cache warmed)")
    print(f"job: {args.arch}, random weights (torch.manual_seed(0), no download), frozen; Linear(features, 2); "
          f"Adam lr {LR_FULL}, {args.epochs} epochs, batch 64; rerun with lr {LR_RERUN}")
    print(f"repetitions: PyTorch {args.torch_reps}, tlpipe {args.tlpipe_reps} (each on a fresh cache); medians below")
    if args.wait_idle > 0:
        print(f"each timed command waits (up to {args.wait_idle:g} s) for the machine to be idle first")
    print()

    onnx = os.path.join(tmp, f"{args.arch}.onnx")
    subprocess.run([sys.executable, CLASSIC, "export", "--arch", args.arch, "--out", onnx], check=True, cwd=REPO)
    print()

    torch_full, torch_rerun, tl_full, tl_rerun, tl8_full, tl8_rerun = [], [], [], [], [], []
    for rep in range(max(args.torch_reps, args.tlpipe_reps)):
        print(f"repetition {rep + 1}:")
        # PyTorch first: on a shared machine its long job is the one most exposed to others' load.
        if rep < args.torch_reps:
            torch_full.append(torch_job(tmp, data, args, LR_FULL, f"full #{rep + 1}"))
            if args.torch_rerun == "run":
                torch_rerun.append(torch_job(tmp, data, args, LR_RERUN, f"lr rerun #{rep + 1}"))
            else:
                torch_rerun.append(torch_full[-1])
                print(f"  PyTorch lr rerun #{rep + 1}: not run; the full job's times stand for it (--torch-rerun same)")
        if rep < args.tlpipe_reps:
            cache = os.path.join(tmp, f"cache-{rep}")
            full = tlpipe_job(tmp, data, onnx, cache, out_rel, args, LR_FULL, f"full #{rep + 1}")
            rerun = tlpipe_job(tmp, data, onnx, cache, out_rel, args, LR_RERUN, f"lr rerun #{rep + 1}")
            ran = [s["name"] for s in rerun.summary["stages"] if s["status"] == "ran"]
            print(f"    rerun ran only: {', '.join(ran)}")
            if "features" in ran:
                print("    WARNING: the lr rerun recomputed the features: the cache did not work as expected")
            tl_full.append(full), tl_rerun.append(rerun)
            if args.int8 and rep < (args.int8_reps or args.tlpipe_reps):
                cache8 = os.path.join(tmp, f"cache-int8-{rep}")
                tl8_full.append(tlpipe_job(tmp, data, onnx, cache8, out_rel, args, LR_FULL, f"int8 full #{rep + 1}", PIPELINE_INT8))
                tl8_rerun.append(tlpipe_job(tmp, data, onnx, cache8, out_rel, args, LR_RERUN, f"int8 lr rerun #{rep + 1}", PIPELINE_INT8))

    # What tlpipe's freeze stage did with the torch export.
    first = tl_full[0]
    cut = re.search(r"freeze: (cut after .*)", first.stderr)
    print(f"\ntlpipe freeze: {cut.group(1) if cut else '(no cut line in the output)'}")
    print(f"tlpipe feature width: {first.summary['metrics']['freeze']['featureWidth']}")
    print(f"tlpipe full job stages (repetition 1): " + ", ".join(
        f"{s['name']} {s['durationMs'] / 1000:.1f} s" for s in first.summary["stages"]))
    with open(torch_full[0].log) as f:
        timings = [l.strip() for l in f if l.startswith(("epoch ", "classic timings"))]
    print("PyTorch full job (repetition 1):\n  " + "\n  ".join(timings))

    # On a shared machine some repetitions run beside other people's jobs: each
    # cell is the median of its idle repetitions (other processes under
    # IDLE_CORES), or of all of them when none was idle.
    def pick(ts):
        idle = [t for t in ts if t.others < IDLE_CORES]
        return idle or ts

    def row(name, a, b):
        pa, pb = pick(a), pick(b)
        ta, tb = median([t.wall for t in pa]), median([t.wall for t in pb])
        ca, cb = median([t.cpu for t in pa]), median([t.cpu for t in pb])
        all_ratio = median([t.wall for t in a]) / median([t.wall for t in b])
        return name, ta, tb, ta / tb, ca, cb, ca / cb, f"{len(pa)}/{len(a)}", f"{len(pb)}/{len(b)}", all_ratio

    rows = [row("full job", torch_full, tl_full), row(f"rerun, lr {LR_RERUN}", torch_rerun, tl_rerun)]
    if tl8_full:
        rows += [row("full job, int8", torch_full, tl8_full), row(f"rerun, int8, lr {LR_RERUN}", torch_rerun, tl8_rerun)]
    print(f"\nWall time; {args.arch}, {2 * args.train_per_class} train + {args.test} test images, "
          f"{args.epochs} epochs, {sh('nproc')} cores")
    print(f"| {'':<22} | {'PyTorch s':>9} | {'tlpipe s':>8} | {'ratio':>6} | {'PyTorch CPU s':>13} | {'tlpipe CPU s':>12} | {'CPU ratio':>9} |")
    print("|" + "|".join("-" * (w + 1) + ":" for w in (22, 9, 8, 6, 13, 12, 9)).replace(":", "-", 1) + "|")
    for name, ta, tb, r, ca, cb, cr, *_ in rows:
        print(f"| {name:<22} | {ta:9.1f} | {tb:8.1f} | {r:5.1f}x | {ca:13.1f} | {cb:12.1f} | {cr:8.1f}x |")
    print(f"medians of the repetitions timed on an idle machine (other processes under {IDLE_CORES} cores), "
          "else of all; repetitions counted (PyTorch, tlpipe): "
          + "; ".join(f"{r[0]}: {r[7]}, {r[8]}" for r in rows))
    if any(r[7].split("/")[0] != r[7].split("/")[1] or r[8].split("/")[0] != r[8].split("/")[1] for r in rows):
        print("with every repetition counted, the wall ratios would be: "
              + "; ".join(f"{r[0]} {r[9]:.1f}x" for r in rows))
    print("ratio = PyTorch / tlpipe (how many times longer the classic job takes); CPU = user + sys of the process tree")
    n_train = 2 * args.train_per_class
    torch_passes = args.epochs * n_train + args.test
    tl_passes = n_train + args.test
    print(f"image passes (decode + backbone forward) in the full job: PyTorch {torch_passes} "
          f"({args.epochs} epochs x {n_train} + {args.test} test), tlpipe {tl_passes} (each image once), "
          f"{torch_passes / tl_passes:.1f}x; CPU per pass: PyTorch {1000 * rows[0][4] / torch_passes:.0f} ms, "
          f"tlpipe {1000 * rows[0][5] / tl_passes:.0f} ms (whole job's CPU / passes)")
    # The floor of any job over these images: onnxruntime alone on the same
    # fp32 file, timed now, at the settings it is fastest with.
    alone = json.loads(sh(f"node dist/bench/inference-alone.js {shlex.quote(onnx)} --images 64 --reps 3 --json"))
    floor = tl_passes * alone["best"]["wallMsPerImage"] / 1000
    print(f"onnxruntime alone on the fp32 model (bench/inference-alone.ts, batch {alone['best']['batch']}, spinning "
          f"{'on' if alone['best']['spinning'] else 'off'}): {alone['best']['wallMsPerImage']:.1f} ms per image, so the "
          f"{tl_passes} passes take at least {floor:.1f} s even with no decoding and no other stage; against PyTorch's "
          f"{rows[0][1]:.1f} s no fp32 job can exceed {rows[0][1] / floor:.1f}x here (tlpipe: {rows[0][3]:.1f}x, "
          f"{100 * floor / rows[0][2]:.0f} % of its wall time is that floor)")
    if tl8_full:
        q = tl8_full[0].summary["metrics"].get("quantize", {})
        print(f"tlpipe int8 (backbone.quantize): features agree with fp32 at cosine {q.get('cosineMean', float('nan')):.4f} "
              f"(min {q.get('cosineMin', float('nan')):.4f}); validation accuracy fp32 "
              f"{100 * tl_full[0].summary['metrics']['evaluate']['accuracy']:.2f} %, int8 "
              f"{100 * tl8_full[0].summary['metrics']['evaluate']['accuracy']:.2f} % (random weights: near chance either way)")
    others = [t.others for t in torch_full + torch_rerun + tl_full + tl_rerun + tl8_full + tl8_rerun]
    print(f"other processes used {min(others):.2f} to {max(others):.2f} cores on average during the timed commands"
          + ("  (the machine was not idle: wall times are inflated; the CPU columns are less affected)"
             if max(others) > 0.25 else ""))


if __name__ == "__main__":
    main(sys.argv[1:])

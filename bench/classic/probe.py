#!/usr/bin/env python3
"""Where the classic job's time per image goes, for docs/classic-comparison.md:
PIL decode + torchvision transform (one torch thread, as in a DataLoader
worker), and the frozen backbone's forward pass at
batch 64 in eval mode and in train mode (as classic.py runs training batches:
BatchNorm computes batch statistics). Wall and CPU milliseconds per image,
torch threads = cores, no DataLoader workers.

    /usr/bin/python3 bench/classic/probe.py DATA_DIR [--arch mobilenet_v2] [--reps 3]
"""
import argparse
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import classic  # noqa: E402


def timed(fn, n):
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return 1000 * (time.perf_counter() - w0) / n, 1000 * (time.process_time() - c0) / n


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--arch", default="mobilenet_v2", choices=classic.ARCHS)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    model = classic.build_backbone(args.arch)
    for q in model.parameters():
        q.requires_grad = False
    ds = classic.CatsDogs(os.path.join(args.data, "train"), classic.make_transform())
    n = min(64, len(ds))
    batch = []
    results = {"decode + transform (PIL)": [], "forward, eval mode": [], "forward, train mode": []}
    for _ in range(args.reps):
        batch.clear()
        # One torch thread, as in a DataLoader worker (which sets it so): with
        # more, ToTensor/Normalize on one small image pay OpenMP overhead.
        torch.set_num_threads(1)
        results["decode + transform (PIL)"].append(timed(lambda: batch.extend(ds[i][0] for i in range(n)), n))
        torch.set_num_threads(os.cpu_count())
        x = torch.stack(batch)
        with torch.no_grad():
            model.eval()
            results["forward, eval mode"].append(timed(lambda: model(x), n))
        model.train()
        results["forward, train mode"].append(timed(lambda: model(x), n))
    print(f"{args.arch}, batch {n}, forward with {torch.get_num_threads()} torch threads; medians of {args.reps}, per image:")
    for name, rs in results.items():
        print(f"  {name:<26} {statistics.median(r[0] for r in rs):6.1f} ms wall  {statistics.median(r[1] for r in rs):6.1f} ms CPU")

    # Timing could depend on the weights only through subnormal floats (slow on
    # x86): count them in every activation of the eval-mode forward pass.
    torch.manual_seed(0)
    model = classic.build_backbone(args.arch).eval()
    counts = {"values": 0, "subnormal": 0}
    tiny = torch.finfo(torch.float32).tiny

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            a = output.abs()
            counts["values"] += a.numel()
            counts["subnormal"] += int(((a > 0) & (a < tiny)).sum())

    for m in model.modules():
        if not list(m.children()):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    print(f"eval-mode activations (every leaf module's output, {n} real images): "
          f"{counts['subnormal']} subnormal of {counts['values']:,}")


if __name__ == "__main__":
    main(sys.argv[1:])

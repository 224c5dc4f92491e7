"""Writes torchvision's ResNet-50 and MobileNetV2 as float32 ONNX files with
seeded random weights, for bench/gpu/check.sh on a machine that has PyTorch
but no network: nothing is downloaded, and the check compares the CPU with
CUDA on the same file, so trained weights are not needed for that.

    python3 bench/gpu/export_backbones.py OUT_DIR [--seed 0]
"""
import argparse
import os
import sys

import torch
import torchvision


def export(model, path):
    model.eval()
    dummy = torch.zeros(1, 3, 224, 224)
    kwargs = dict(
        opset_version=17,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        do_constant_folding=True,
    )
    # The TorchScript exporter gives the plain Flatten/Gemm classifier that
    # backbone.freeze cuts before; newer PyTorch defaults to the dynamo one.
    try:
        torch.onnx.export(model, dummy, path, dynamo=False, **kwargs)
    except Exception as e:  # an older torch without the keyword, or one without that exporter
        print(f"TorchScript exporter not available ({type(e).__name__}: {e}); using torch's default exporter", file=sys.stderr)
        torch.onnx.export(model, dummy, path, **kwargs)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for name, build in (("resnet50", torchvision.models.resnet50), ("mobilenet_v2", torchvision.models.mobilenet_v2)):
        path = os.path.join(args.out, f"{name}.onnx")
        if os.path.exists(path):
            print(f"{path}: already there")
            continue
        torch.manual_seed(args.seed)
        export(build(weights=None), path + ".tmp")
        os.replace(path + ".tmp", path)
        print(f"{path}: torchvision {name}, random weights (seed {args.seed}), opset 17, {os.path.getsize(path)} bytes")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")


if __name__ == "__main__":
    main(sys.argv[1:])

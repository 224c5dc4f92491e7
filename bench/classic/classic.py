#!/usr/bin/env python3
"""The classic PyTorch transfer-learning job on Kaggle's Dogs vs. Cats, as it
is usually written (the PyTorch "ConvNet as fixed feature extractor" recipe):

  - a torchvision backbone with its parameters frozen (requires_grad = False),
    its classifier replaced by Linear(features, 2);
  - a Dataset labelled by file name ("cat" in the name -> 0, else 1), with
    Resize(256) / CenterCrop(224) / ToTensor / Normalize(ImageNet);
  - an 80/20 random split, DataLoader(batch 64), Adam on the head, N epochs,
    train/val loss and accuracy printed each epoch. The frozen backbone runs
    again on every batch of every epoch: nothing is cached;
  - predictions for test1/ written as `id,label`, sorted by numeric id.

Part of bench/classic (opt-in, never in CI): see docs/classic-comparison.md.
There is no network here, so the weights are torchvision's random
initialisation under torch.manual_seed, never downloaded: wall time does not
depend on the weight values, and accuracy is not what this script is for.

    classic.py train  --data DIR [--arch mobilenet_v2|resnet50] [--lr 1e-3] [--epochs 5] ...
    classic.py export --out model.onnx [--arch ...] [--seed 0] [--opset 13] [--input-name input] [--keep-batchnorm]
        the same model (same seed, original 1000-class classifier, eval mode)
        as ONNX, opset 13, dynamic batch axis, for tlpipe's backbone.load.
"""
import argparse
import os
import sys
import time

T_START = time.perf_counter()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset, random_split  # noqa: E402
from torchvision import models, transforms  # noqa: E402

T_IMPORTED = time.perf_counter()

ARCHS = ("mobilenet_v2", "resnet50")


def build_backbone(arch):
    """The torchvision model with random weights (no download: weights=None)."""
    if arch == "mobilenet_v2":
        return models.mobilenet_v2(weights=None)
    if arch == "resnet50":
        return models.resnet50(weights=None)
    raise SystemExit(f"unknown --arch {arch!r}; one of {', '.join(ARCHS)}")


def replace_head(model, arch, classes=2):
    """The classic head swap: a new Linear(features, classes), the only trainable part."""
    if arch == "mobilenet_v2":
        # classifier = Sequential(Dropout(0.2), Linear(1280, 1000))
        model.classifier[1] = nn.Linear(model.classifier[1].in_features, classes)
        return model.classifier[1]
    # resnet50: fc = Linear(2048, 1000)
    model.fc = nn.Linear(model.fc.in_features, classes)
    return model.fc


class CatsDogs(Dataset):
    """Kaggle layout: a flat folder of cat.N.jpg / dog.N.jpg (or N.jpg for test1)."""

    def __init__(self, folder, transform, labelled=True):
        self.paths = sorted(
            os.path.join(folder, f)
            for f in os.listdir(folder)
            if f.lower().endswith((".jpg", ".jpeg", ".png"))
        )
        self.transform = transform
        self.labelled = labelled

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        path = self.paths[i]
        image = Image.open(path).convert("RGB")
        name = os.path.basename(path)
        if self.labelled:
            target = 0 if "cat" in name else 1
        else:
            target = int(os.path.splitext(name)[0])  # the numeric id
        return self.transform(image), target


def make_transform():
    return transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])


def train(args):
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(args.seed)

    model = build_backbone(args.arch)
    for p in model.parameters():
        p.requires_grad = False
    head = replace_head(model, args.arch)

    transform = make_transform()
    full = CatsDogs(os.path.join(args.data, "train"), transform)
    n_val = int(round(len(full) * 0.2))
    train_set, val_set = random_split(
        full, [len(full) - n_val, n_val], generator=torch.Generator().manual_seed(args.seed)
    )
    loaders = {
        "train": DataLoader(train_set, batch_size=args.batch, shuffle=True, num_workers=args.workers),
        "val": DataLoader(val_set, batch_size=args.batch, shuffle=False, num_workers=args.workers),
    }
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(head.parameters(), lr=args.lr)
    print(
        f"classic: {args.arch}, {len(train_set)} train / {len(val_set)} val images, "
        f"batch {args.batch}, {args.workers} loader workers, {torch.get_num_threads()} torch threads, "
        f"Adam lr {args.lr:g}, {args.epochs} epochs",
        flush=True,
    )

    t_train = time.perf_counter()
    for epoch in range(args.epochs):
        t_epoch = time.perf_counter()
        stats = {}
        for phase in ("train", "val"):
            # As in the tutorial: train mode while training (BatchNorm uses batch
            # statistics and updates its running ones, Dropout is on), eval for val.
            model.train() if phase == "train" else model.eval()
            loss_sum, correct, seen = 0.0, 0, 0
            for inputs, labels in loaders[phase]:
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)  # the frozen backbone, again, every batch
                    loss = criterion(outputs, labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                loss_sum += loss.item() * inputs.size(0)
                correct += (outputs.argmax(1) == labels).sum().item()
                seen += inputs.size(0)
            stats[phase] = (loss_sum / seen, correct / seen)
        print(
            f"epoch {epoch + 1}/{args.epochs}: train loss {stats['train'][0]:.4f} acc {100 * stats['train'][1]:.2f}% | "
            f"val loss {stats['val'][0]:.4f} acc {100 * stats['val'][1]:.2f}% ({time.perf_counter() - t_epoch:.1f} s)",
            flush=True,
        )

    t_predict = time.perf_counter()
    model.eval()
    test = CatsDogs(os.path.join(args.data, "test1"), transform, labelled=False)
    rows = []
    with torch.no_grad():
        for inputs, ids in DataLoader(test, batch_size=args.batch, shuffle=False, num_workers=args.workers):
            labels = model(inputs).argmax(1)
            rows.extend(zip(ids.tolist(), labels.tolist()))
    rows.sort()
    with open(args.out, "w") as f:
        f.write("id,label\n")
        f.writelines(f"{i},{label}\n" for i, label in rows)
    t_end = time.perf_counter()
    print(f"wrote {args.out} ({len(rows)} rows)")
    print(
        f"classic timings: import {T_IMPORTED - T_START:.1f} s, setup {t_train - T_IMPORTED:.1f} s, "
        f"{args.epochs} epochs {t_predict - t_train:.1f} s, test predictions {t_end - t_predict:.1f} s, "
        f"total in process {t_end - T_START:.1f} s",
        flush=True,
    )


def export(args):
    torch.manual_seed(args.seed)
    model = build_backbone(args.arch)  # same seed, same weights as `train` builds
    model.eval()
    dummy = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(
        model,
        dummy,
        args.out,
        opset_version=args.opset,
        input_names=[args.input_name],
        output_names=["output"],
        dynamic_axes={args.input_name: {0: "batch"}, "output": {0: "batch"}},
        do_constant_folding=True,
        # --keep-batchnorm: BatchNormalization stays a node of its own, as in the
        # ONNX Model Zoo's resnet50-v1-12. Exporting in EVAL mode folds it into
        # the Conv; PRESERVE keeps the model's own (eval) mode without that pass.
        training=torch.onnx.TrainingMode.PRESERVE if args.keep_batchnorm else torch.onnx.TrainingMode.EVAL,
    )
    print(f"exported {args.arch} (seed {args.seed}, random weights, eval mode, opset {args.opset}) to {args.out}")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train", help="the classic job")
    t.add_argument("--data", required=True, help="folder with train/ and test1/ (Kaggle layout)")
    t.add_argument("--arch", choices=ARCHS, default="mobilenet_v2")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="DataLoader workers")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="submission.csv")
    e = sub.add_parser("export", help="the same backbone as ONNX")
    e.add_argument("--out", required=True)
    e.add_argument("--arch", choices=ARCHS, default="mobilenet_v2")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--opset", type=int, default=13)
    e.add_argument("--input-name", default="input", help="the graph input's name (the Model Zoo's ResNets call it data)")
    e.add_argument("--keep-batchnorm", action="store_true", help="do not fold BatchNormalization into the Conv (as the Model Zoo files have it)")
    args = parser.parse_args(argv)
    train(args) if args.mode == "train" else export(args)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The PyTorch side of bench/finetune.ts: one fine-tuning epoch as the usual
scripts write it. torchvision's MobileNetV2 with its last N blocks (and the
final 1x1 conv) trainable and the rest frozen with requires_grad = False, the
frozen bottom recomputed in every epoch; a new Linear(1280, classes) head;
AdamW with the blocks at a smaller learning rate. Batch norm layers in eval
mode (their statistics frozen), as tlpipe folds them into the convolutions.

Two inputs, each timed per epoch:
  tensors  preprocessed images held in memory (the forward and backward
           passes only: the most favourable case for PyTorch);
  jpegs    the photos decoded and transformed each epoch by a DataLoader
           (Resize(256), CenterCrop(224), ToTensor, Normalize), as such scripts do.

Each epoch ends with a validation pass (eval mode, no gradients) over --val
images, as such scripts print validation loss and accuracy per epoch, and as
tlpipe's epoch scores its validation rows: the whole network, the frozen
bottom included, from tensors or from decoded JPEGs like the training batches.

Prints one JSON line: {"tensors": [seconds per epoch...], "jpegs": [...]}.
Bench tooling only: never part of tlpipe or its tests.
"""
import argparse
import json
import os
import time

import torch
import torchvision
from torch.utils.data import DataLoader, Dataset


class Photos(Dataset):
    def __init__(self, files, labels, transform):
        self.files, self.labels, self.transform = files, labels, transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            return self.transform(im.convert("RGB")), self.labels[i]


def model_for(blocks, classes):
    m = torchvision.models.mobilenet_v2(weights=None)
    m.classifier = torch.nn.Linear(1280, classes)
    for p in m.parameters():
        p.requires_grad = False
    # features[1..17] are the inverted residual blocks, features[18] the 1x1 conv to 1280.
    top = list(m.features[18 - blocks :]) + [m.classifier]
    for layer in top:
        for p in layer.parameters():
            p.requires_grad = True
    blocks_params = [p for layer in m.features[18 - blocks :] for p in layer.parameters()]
    opt = torch.optim.AdamW(
        [{"params": blocks_params, "lr": 1e-5}, {"params": m.classifier.parameters(), "lr": 1e-4}], weight_decay=0.01
    )
    m.eval()
    return m, opt


def epoch(m, opt, batches, val_batches):
    start = time.perf_counter()
    loss_fn = torch.nn.CrossEntropyLoss()
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(m(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        correct, total = 0, 0
        for x, y in val_batches:
            out = m(x)
            loss_fn(out, y)
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True, help="a text file listing image paths, one a line")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--val", type=int, default=0, help="validation images scored after each epoch (the files after the training ones)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    listed = [l.strip() for l in open(args.files) if l.strip()]
    files = listed[: args.images]
    labels = [0 if "cat" in os.path.basename(f) else 1 for f in files]
    # Validation photos: the files after the training ones, cycling through the list if it is short.
    val_files = [listed[(args.images + i) % len(listed)] for i in range(args.val)]
    val_labels = [0 if "cat" in os.path.basename(f) else 1 for f in val_files]
    t = torchvision.transforms
    transform = t.Compose([t.Resize(256), t.CenterCrop(224), t.ToTensor(), t.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    m, opt = model_for(args.blocks, 2)
    loader = DataLoader(Photos(files, labels, transform), batch_size=args.batch, shuffle=True, num_workers=args.workers)
    out = {"jpegs": [], "tensors": []}
    # The tensors once, for the in-memory case.
    tensors = [(x, y) for x, y in DataLoader(Photos(files, labels, transform), batch_size=args.batch, num_workers=args.workers)]
    val_loader = DataLoader(Photos(val_files, val_labels, transform), batch_size=args.batch, num_workers=args.workers)
    val_tensors = [(x, y) for x, y in val_loader]
    for _ in range(args.epochs):
        out["tensors"].append(epoch(m, opt, tensors, val_tensors))
        out["jpegs"].append(epoch(m, opt, loader, val_loader))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

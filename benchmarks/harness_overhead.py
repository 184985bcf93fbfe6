"""Harness overhead: ferbench's engine vs. a bare PyTorch loop on the same model and data.

Trains vit-baseline (tiny preset unless --preset says otherwise) on synthfer through
``ferbench.trainer.Trainer``, then trains the same architecture from the same initial weights with a
hand-written loop over pre-normalised tensors already in memory (the fastest a loop can feed a model),
and prints images/s of both and their ratio, for training and for evaluation. It also times the data
pipeline alone (gather + transfer + augmentation, no model).

    python benchmarks/harness_overhead.py                     # CPU, tiny preset, 48 px
    python benchmarks/harness_overhead.py --device cuda --preset paper --samples 2048 --epochs 1
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ferbench.config import parse_assignment
from ferbench.trainer import Checkpoint, FoldLoaders, Trainer, select_device
from ferbench.loader import ArrayBatches, Normalizer
from ferbench.method import DataInfo
from ferbench.plugins import registry
from ferbench.specs import load_object
from timing import effective_config, pipeline_images_per_second


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternate harness and bare runs; report the best")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args()


def bare_loop(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int, epochs: int,
              lr: float, device: torch.device, amp: bool) -> float:
    """Seconds for a minimal training loop: shuffle, flip, forward, backward, step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    model.train()
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(images), device=device)
        for start in range(0, len(images), batch_size):
            idx = order[start:start + batch_size]
            x = images[idx]
            flip = torch.rand(len(idx), device=device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = nn.functional.cross_entropy(model(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


@torch.inference_mode()
def bare_eval(model: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device, amp: bool) -> float:
    """Seconds to predict ``images`` in batches."""
    model.eval()
    started = time.perf_counter()
    for start in range(0, len(images), batch_size):
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            model(images[start:start + batch_size]).float().softmax(1).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    reg = registry()
    method, dataset = reg.method("vit-baseline"), reg.dataset("synthfer")
    assignments = [parse_assignment(a) for a in args.assignments] + [
        ("train.epochs", args.epochs), ("dataset.samples", args.samples), ("optim.schedule", "constant"),
        ("data.augment.translate", 0.0), ("data.augment.scale", [1.0, 1.0]), ("data.augment.color_jitter", 0.0),
        ("data.augment.rotate_degrees", 0.0), ("data.augment.random_erasing", 0.0), ("optim.name", "adamw"),
        ("optim.weight_decay", 0.0)]
    config = effective_config("vit-baseline", "synthfer", args.preset, assignments)
    device = select_device(args.device)
    amp = bool(config["train"]["amp"]) and device.type == "cuda"
    data = load_object(dataset.loader)(None, config["dataset"])
    size, batch_size = config["data"]["image_size"], config["train"]["batch_size"]
    arrays = {"rgb": data.pixels(size).arrays["rgb"]}
    rows = np.arange(len(data))
    normalizer = Normalizer({"rgb": (config["data"]["mean"], config["data"]["std"])}, device)
    train = ArrayBatches(arrays, data.labels, rows, batch_size, device, normalizer, train=True,
                         augment_cfg=config["data"]["augment"])
    test = ArrayBatches(arrays, data.labels, rows, config["train"]["eval_batch_size"], device, normalizer)
    info = DataInfo(classes=data.classes, modalities=("rgb",), image_size=size,
                    class_counts=np.bincount(data.labels, minlength=7), steps_per_epoch=len(train),
                    epochs=args.epochs, normalization={"rgb": (config["data"]["mean"], config["data"]["std"])})

    torch.manual_seed(0)
    initial = load_object(method.factory)(config, info)

    pipeline = pipeline_images_per_second(train)

    images = torch.from_numpy(np.array(arrays["rgb"])).to(device).permute(0, 3, 1, 2)
    images = normalizer.from_uint8("rgb", images)
    labels = torch.from_numpy(data.labels).to(device)
    harness_train = harness_eval = bare_train = bare_eval_ips = 0.0
    harness_total = bare_total = float("inf")
    for _ in range(args.repeats):  # alternate, so that neither side benefits from warmer caches
        with tempfile.TemporaryDirectory() as tmp:
            wall = time.perf_counter()
            loaders = FoldLoaders(train=train, val=None, test=test, test_labels=data.labels)
            trainer = Trainer(copy.deepcopy(initial), loaders, info, config, device, 0,
                              Checkpoint(Path(tmp) / "fold.pt"), lambda y, p: 0.0, progress=False)
            result = trainer.fit()
            harness_total = min(harness_total, time.perf_counter() - wall)
        harness_train = max(harness_train, args.epochs * len(rows) / result.train_seconds)
        harness_eval = max(harness_eval, len(rows) / result.eval_seconds)
        bare_model = copy.deepcopy(initial.backbone).to(device)
        seconds = bare_loop(bare_model, images, labels, batch_size, args.epochs, config["optim"]["lr"], device, amp)
        bare_train = max(bare_train, args.epochs * len(rows) / seconds)
        eval_seconds = bare_eval(bare_model, images, config["train"]["eval_batch_size"], device, amp)
        bare_eval_ips = max(bare_eval_ips, len(rows) / eval_seconds)
        bare_total = min(bare_total, seconds + eval_seconds)

    print(f"device {device}, preset {args.preset}, {len(rows)} images at {size} px, batch {batch_size}, "
          f"{args.epochs} epochs, amp {amp}, best of {args.repeats}")
    print(f"data pipeline alone       {pipeline:10.0f} img/s")
    print(f"train  harness {harness_train:8.0f} img/s   bare loop {bare_train:8.0f} img/s   "
          f"ratio {harness_train / bare_train:.3f}")
    print(f"eval   harness {harness_eval:8.0f} img/s   bare loop {bare_eval_ips:8.0f} img/s   "
          f"ratio {harness_eval / bare_eval_ips:.3f}")
    print(f"whole fold (train + per-epoch checkpoints + test predictions): harness {harness_total:.2f} s, "
          f"bare loop {bare_total:.2f} s, ratio {bare_total / harness_total:.3f}")


if __name__ == "__main__":
    main()

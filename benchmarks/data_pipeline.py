"""Data pipeline vs. model throughput on a RAF-DB-sized fixture (15,339 aligned 100x100 JPEGs).

Writes the fixture once in RAF-DB's official layout (EmoLabel/list_patition_label.txt +
Image/aligned/*_aligned.jpg) under --workdir, then reports, through the real `rafdb` dataset plugin:

- cold decode: first load at the preset resolution (decode + resize every JPEG into the pixel cache);
- warm load: the same call again (memory-mapped cache, what every later epoch and run pays);
- data pipeline: training batches (gather, host-to-device copy, the preset's augmentation, normalisation)
  with no model;
- model: training images/s of the preset's model on those batches (a few batches).

    python benchmarks/data_pipeline.py --preset tiny
    python benchmarks/data_pipeline.py --preset paper --device cuda --set model.weights=
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

RAF_COUNTS = {"train": (1290, 281, 717, 4772, 1982, 705, 2524), "test": (329, 74, 160, 1185, 478, 162, 680)}


def write_fixture(root: Path) -> Path:
    """A RAF-DB-sized fixture in the official layout (skipped when already there)."""
    from PIL import Image

    labels = root / "EmoLabel" / "list_patition_label.txt"
    if labels.exists():
        return root
    images = root / "Image" / "aligned"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for split, counts in RAF_COUNTS.items():
        codes = np.repeat(np.arange(1, 8), counts)
        rng.shuffle(codes)
        digits = 5 if split == "train" else 4
        for index, code in enumerate(codes, start=1):
            name = f"{split}_{index:0{digits}d}"
            pixels = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"{name}_aligned.jpg", quality=90)
            lines.append(f"{name}.jpg {code}")
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text("\n".join(lines))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "ferbench-rafdb-fixture"))
    parser.add_argument("--model-batches", type=int, default=10)
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    os.environ.setdefault("FERBENCH_HOME", str(Path(args.workdir) / "home"))

    import torch

    from ferbench.config import parse_assignment
    from ferbench.trainer import select_device
    from ferbench.loader import ArrayBatches, Normalizer
    from ferbench.method import DataInfo, StepContext
    from ferbench.pixelcache import cache_root
    from ferbench.plugins import registry
    from ferbench.specs import load_object
    from timing import effective_config, pipeline_images_per_second

    root = write_fixture(Path(args.workdir) / "RAF-DB" / "basic")
    reg = registry()
    method, dataset = reg.method("vit-baseline"), reg.dataset("rafdb")
    config = effective_config("vit-baseline", "rafdb", args.preset, [parse_assignment(a) for a in args.assignments])
    size, batch_size = config["data"]["image_size"], config["train"]["batch_size"]
    device = select_device(args.device)

    import shutil

    shutil.rmtree(cache_root() / "rafdb", ignore_errors=True)
    data = load_object(dataset.loader)(root, config["dataset"])
    started = time.perf_counter()
    data.pixels(size)
    cold = len(data) / (time.perf_counter() - started)
    started = time.perf_counter()
    arrays = data.pixels(size).arrays
    warm_seconds = time.perf_counter() - started

    rows = np.flatnonzero(data.split == "train")
    normalizer = Normalizer({"rgb": (config["data"]["mean"], config["data"]["std"])}, device)
    batches = ArrayBatches(arrays, data.labels, rows, batch_size, device, normalizer, train=True,
                           augment_cfg=config["data"]["augment"])
    pipeline = pipeline_images_per_second(batches)

    info = DataInfo(classes=data.classes, modalities=("rgb",), image_size=size,
                    class_counts=np.bincount(data.labels, minlength=7), steps_per_epoch=len(batches), epochs=1,
                    normalization={"rgb": (config["data"]["mean"], config["data"]["std"])})
    model = load_object(method.factory)(config, info).to(device)
    slots = model.configure_optimizers()
    amp = config["train"]["amp"] and device.type == "cuda"
    ctx = StepContext(slots=slots, scaler=torch.amp.GradScaler(device.type, enabled=amp), device=device,
                      amp_dtype=torch.float16 if amp else None)
    seen, started = 0, None
    for index, batch in enumerate(batches.epoch(1)):
        if index == 2:  # skip warm-up batches
            if device.type == "cuda":
                torch.cuda.synchronize()
            started, seen = time.perf_counter(), 0
        if index >= 2 + args.model_batches:
            break
        model.training_step(batch, ctx)
        ctx.scaler.update()
        ctx.end_window()
        seen += len(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    model_ips = seen / (time.perf_counter() - started)

    print(f"RAF-DB-sized fixture: {len(data)} images, {size} px, batch {batch_size}, device {device}, "
          f"preset {args.preset}")
    print(f"cold decode into the pixel cache {cold:10.0f} img/s")
    print(f"warm load (memory-mapped cache)  {warm_seconds * 1000:10.1f} ms for all images")
    print(f"data pipeline (train batches)    {pipeline:10.0f} img/s")
    print(f"model training                   {model_ips:10.0f} img/s   pipeline/model {pipeline / model_ips:.1f}x")


if __name__ == "__main__":
    main()

"""Decode-once pixel cache and the tolerant file readers shared by dataset plugins."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferbench.data import FERData
from ferbench.datafiles import fingerprint, read_csv, read_image, read_lines, require
from ferbench.errors import DataError
from ferbench.pixelcache import cached_pixels
from ferbench.protocols import build_manifest
from ferbench.specs import ProtocolSpec


def write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray(np.full((10, 12, 3), i * 20, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_images_are_decoded_once_then_memory_mapped(fb_env: dict, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", 6)
    calls: list[int] = []

    def read(index: int) -> np.ndarray:
        calls.append(index)
        return read_image(paths[index])

    key = fingerprint(paths)
    first = cached_pixels("toy", key, len(paths), 8, {"rgb": (read, 3)})
    assert sorted(calls) == list(range(6))
    assert first.arrays["rgb"].shape == (6, 8, 8, 3) and first.arrays["rgb"][3].mean() == 60
    again = cached_pixels("toy", key, len(paths), 8, {"rgb": (read, 3)})
    assert len(calls) == 6 and isinstance(again.arrays["rgb"], np.memmap)
    cached_pixels("toy", key, len(paths), 16, {"rgb": (read, 3)})
    assert len(calls) == 12, "another resolution is decoded again"
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(paths[0])
    import os
    os.utime(paths[0], ns=(1, 1))
    assert fingerprint(paths) != key, "an edited file changes the key"


def test_unreadable_images_are_skipped_reported_and_excluded_from_splits(fb_env: dict, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    paths = write_images(tmp_path / "img", 8)
    paths[2].write_bytes(b"not an image")
    data = FERData(classes=("a", "b"), ids=[p.name for p in paths], labels=[0, 1] * 4,
                   split=["train"] * 6 + ["test"] * 2,
                   load_pixels=lambda size: cached_pixels("toy2", fingerprint(paths), 8, size,
                                                          {"rgb": (lambda i: read_image(paths[i]), 3)},
                                                          ids=np.array([p.name for p in paths])))
    pixels = data.pixels(8)
    assert pixels.unreadable.tolist() == [2]
    assert "1 unreadable image(s) in toy2 skipped (e.g. 2.png)" in capsys.readouterr().err
    manifest = build_manifest(data, "toy2", ProtocolSpec("official", "official"))
    assert 2 not in manifest.folds[0].train.tolist() and len(manifest.folds[0].train) == 5
    kfold = build_manifest(data, "toy2", ProtocolSpec("k2", "kfold", folds=2))
    assert all(2 not in f.test.tolist() + f.train.tolist() for f in kfold.folds)


def test_label_file_quirks(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_bytes(b"\xef\xbb\xbftrain_00001.jpg 5\r\n\r\ntrain_00002.jpg 1\r\ntest_0001.jpg 7")
    assert read_lines(path) == ["train_00001.jpg 5", "train_00002.jpg 1", "test_0001.jpg 7"]
    table = tmp_path / "t.csv"
    table.write_bytes(b"Usage, Image name ,neutral\r\nTraining,fer0000000.png,4\r\nTraining,,10")
    assert read_csv(table) == [{"Usage": "Training", "Image name": "fer0000000.png", "neutral": "4"},
                               {"Usage": "Training", "Image name": "", "neutral": "10"}]
    with pytest.raises(DataError, match="missing .*nope.txt; expected layout: EmoLabel/"):
        require(tmp_path / "nope.txt", "EmoLabel/list_patition_label.txt")


def test_read_image_converts_grayscale_and_depth(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 5), 77, dtype=np.uint8)).save(tmp_path / "g.jpg")
    rgb = read_image(tmp_path / "g.jpg")
    assert rgb.shape == (4, 5, 3) and abs(int(rgb.mean()) - 77) <= 2
    depth = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    Image.fromarray(depth).save(tmp_path / "d.png")
    scaled = read_image(tmp_path / "d.png", channels=1)
    assert scaled.shape == (2, 2, 1) and scaled.min() == 0 and scaled.max() == 255
    assert scaled[0, 1, 0] < scaled[1, 0, 0] < scaled[1, 1, 0]

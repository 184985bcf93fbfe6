"""RAF-DB plugin: every layout of datasets.md §2 on tiny fixtures with the quirks of real copies."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_RUN, assert_one_line_error, ferbench, ferbench_json
from ferbench.emotions import BASIC7
from ferbench.errors import DataError
from ferbench.plugins import registry
from ferbench.protocols import build_manifest
from ferbench.store import Store
from ferbench_plugins.rafdb.dataset import load

#: datasets.md §1: native RAF-DB code -> canonical name (written out here, independent of the plugin).
NATIVE = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger", 7: "neutral"}
TRAIN_PER_CLASS, TEST_PER_CLASS = 3, 2
GARBAGE = "test_0002"  # written as garbage bytes with a .jpg name
DUPLICATE = ("train_00001.jpg", 7)  # listed again later with another code: the first line wins


def samples() -> list[tuple[str, int]]:
    """(original name, code) in label-file order: train_00001.. then test_0001.., codes cycling 1..7."""
    out = []
    for split, per_class, digits in (("train", TRAIN_PER_CLASS, 5), ("test", TEST_PER_CLASS, 4)):
        for index in range(7 * per_class):
            out.append((f"{split}_{index + 1:0{digits}d}.jpg", index % 7 + 1))
    return out


def write_image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.stem.replace("_aligned", "") == GARBAGE:
        path.write_bytes(b"this is not a JPEG file")
        return
    rng = np.random.default_rng(seed)
    if seed % 4 == 0:  # some real copies hold grayscale JPEGs
        Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8), mode="L").save(path)
    else:
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)


def label_text(lines: list[str]) -> bytes:
    """CRLF line ends, a byte-order mark and no final newline, as in real copies."""
    return ("\ufeff" + "\r\n".join(lines)).encode("utf-8")


def aligned(name: str) -> str:
    return name.replace(".jpg", "_aligned.jpg")


def write_official(root: Path, original: bool = False) -> Path:
    lines = [f"{name} {code}" for name, code in samples()]
    lines.insert(10, f"{DUPLICATE[0]} {DUPLICATE[1]}")
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_bytes(label_text(lines))
    for seed, (name, _) in enumerate(samples()):
        write_image(root / "Image" / "aligned" / aligned(name), seed)
        if original:
            write_image(root / "Image" / "original" / name, seed)
    return root


def write_apvit(root: Path) -> Path:
    (root / "EmoLabel").mkdir(parents=True)
    for split in ("train", "test"):
        lines = [f"{aligned(name)} {code}" for name, code in samples() if name.startswith(split)]
        (root / "EmoLabel" / f"{split}.txt").write_bytes(label_text(lines))
    for seed, (name, _) in enumerate(samples()):
        write_image(root / "Image" / "aligned_224" / name, seed)
    return root


def write_class_folders(root: Path, train: str = "train", test: str = "valid") -> Path:
    for seed, (name, code) in enumerate(samples()):
        folder = train if name.startswith("train") else test
        write_image(root / folder / str(code) / aligned(name), seed)
    (root / train / "1" / "._train_00001_aligned.jpg").write_bytes(b"macOS resource fork")  # hidden: ignored
    return root


def expected_counts() -> dict[str, dict[str, int]]:
    return {"train": {name: TRAIN_PER_CLASS for name in BASIC7}, "test": {name: TEST_PER_CLASS for name in BASIC7}}


def counts(data) -> dict[str, dict[str, int]]:
    return {split: {name: int(((data.split == split) & (data.labels == BASIC7.index(name))).sum()) for name in BASIC7}
            for split in ("train", "test")}


def mapping(data) -> dict[str, tuple[str, str]]:
    """Image stem -> (canonical class, split), whatever the layout."""
    stems = [Path(i).stem.replace("_aligned", "") for i in data.ids]
    return {stem: (BASIC7[label], split) for stem, label, split in zip(stems, data.labels, data.split)}


def truth() -> dict[str, tuple[str, str]]:
    return {Path(name).stem: (NATIVE[code], name.split("_")[0]) for name, code in samples()}


def test_official_layout_maps_native_codes_and_keeps_first_duplicate(tmp_path: Path, capsys) -> None:
    root = write_official(tmp_path / "basic")
    data = load(root, {})
    assert len(data) == len(samples()) and tuple(data.classes) == BASIC7
    assert data.ids[0] == "Image/aligned/train_00001_aligned.jpg"
    assert mapping(data) == truth()  # train_00001 keeps code 1 (surprise), not the duplicate's 7
    assert mapping(data)["train_00001"] == ("surprise", "train")
    assert counts(data) == expected_counts()
    assert Path(data.files[0]) == root / "Image" / "aligned" / "train_00001_aligned.jpg"
    assert "1 duplicated name(s)" in capsys.readouterr().err
    # the spelling codebases use for the data root: a parent holding basic/
    assert mapping(load(tmp_path, {})) == truth()


@pytest.mark.parametrize("layout", ["apvit", "class_folders", "train_set"])
def test_repackaged_layouts_give_the_same_labels(tmp_path: Path, layout: str) -> None:
    root = tmp_path / layout
    if layout == "apvit":
        write_apvit(root)
    elif layout == "class_folders":
        write_class_folders(root)
    else:
        write_class_folders(root, "train_set", "val_set")
    data = load(root, {})
    assert mapping(data) == truth() and counts(data) == expected_counts()
    assert all((root / sample_id).is_file() for sample_id in data.ids)
    explicit = load(root, {"layout": "apvit" if layout == "apvit" else "class_folders"})
    assert list(explicit.ids) == list(data.ids)


def test_original_images_and_variant_errors(tmp_path: Path) -> None:
    root = write_official(tmp_path / "basic", original=True)
    data = load(root, {"image_variant": "original"})
    assert data.ids[0] == "Image/original/train_00001.jpg" and mapping(data) == truth()
    folders = write_class_folders(tmp_path / "folders")
    with pytest.raises(DataError, match="image_variant=original needs the official layout"):
        load(folders, {"image_variant": "original"})
    aligned_only = write_official(tmp_path / "aligned_only")
    with pytest.raises(DataError, match=r"missing .*Image/original"):
        load(aligned_only, {"image_variant": "original"})


def test_layout_errors_are_one_clear_data_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as error:
        load(tmp_path / "empty", {})
    message = str(error.value)
    assert all(name in message for name in ("official", "apvit", "class_folders", "list_patition_label.txt"))
    flat = tmp_path / "flat"  # POSTER V2's README tree: images straight in train/ and valid/
    for name, _ in samples()[:3]:
        write_image(flat / "train" / aligned(name), 1)
    (flat / "valid").mkdir()
    with pytest.raises(DataError, match=r"train must hold class folders named by the RAF-DB code 1..7 .*found 3 images"):
        load(flat, {})
    zero_based = tmp_path / "zero_based"
    write_image(zero_based / "train" / "0" / "a.jpg", 1)
    (zero_based / "test").mkdir()
    with pytest.raises(DataError, match="found folders 0"):
        load(zero_based, {})
    bad = write_official(tmp_path / "bad")
    label_file = bad / "EmoLabel" / "list_patition_label.txt"
    label_file.write_bytes(label_file.read_bytes() + b"\r\ntrain_09999.jpg 8")
    with pytest.raises(DataError, match=rf"line {len(samples()) + 2}: expected '<image name> <label 1-7>'"):
        load(bad, {})
    with pytest.raises(DataError, match=r"no RAF-DB layout found .* looked for: apvit"):
        load(write_official(tmp_path / "official"), {"layout": "apvit"})


def test_pixels_unreadable_image_and_stable_manifest(tmp_path: Path, fb_env: dict[str, str]) -> None:
    root = write_official(tmp_path / "basic")
    data = load(root, {})
    pixels = data.pixels(8)
    assert pixels.arrays["rgb"].shape == (len(data), 8, 8, 3) and pixels.arrays["rgb"].dtype == np.uint8
    garbage = list(data.ids).index(f"Image/aligned/{GARBAGE}_aligned.jpg")
    assert pixels.unreadable.tolist() == [garbage] and data.excluded[garbage]
    gray = list(data.ids).index("Image/aligned/train_00001_aligned.jpg")  # seed 0: a grayscale JPEG
    image = np.asarray(pixels.arrays["rgb"][gray], dtype=int)
    assert (image[..., 0] == image[..., 1]).all() and image.std() > 0
    spec = registry().dataset("rafdb").protocols["official"]
    manifest = build_manifest(data, "rafdb", spec)
    (fold,) = manifest.folds
    assert len(fold.train) == 7 * TRAIN_PER_CLASS and len(fold.test) == 7 * TEST_PER_CLASS - 1
    assert len(fold.val) == 0 and garbage not in fold.test
    again = load(root, {})
    again.pixels(8)  # from the cache this time
    assert build_manifest(again, "rafdb", spec).hash == manifest.hash
    carved = build_manifest(again, "rafdb", spec, val_fraction=0.34)
    assert len(carved.folds[0].val) == 7 and "stratified" in carved.val_rule


def test_data_check_cli_counts_unreadable_and_missing_label_file(tmp_path: Path, fb_env: dict[str, str]) -> None:
    root = write_official(tmp_path / "basic")
    report = ferbench_json("data", "check", "-d", "rafdb", "--data-root", str(root), env=fb_env)
    assert report["counts"] == expected_counts() and report["samples"] == len(samples())
    assert report["reference_counts"]["train"]["happiness"] == 4772
    assert report["unreadable"] == [str(root / "Image" / "aligned" / f"{GARBAGE}_aligned.jpg")]
    text = ferbench("data", "check", "-d", "rafdb", "--data-root", str(root), env=fb_env)
    assert text.returncode == 0 and f"unreadable images: 1 (skipped in runs): {root}" in text.stdout
    assert any(line.split()[:5] == ["train", "happiness", "3", "4772", "-4769"] for line in text.stdout.splitlines())
    (root / "EmoLabel" / "list_patition_label.txt").unlink()
    failed = ferbench("data", "check", "-d", "rafdb", "--data-root", str(root), "--set", "dataset.layout=official",
                      env=fb_env, check=False)
    line = assert_one_line_error(failed, "list_patition_label.txt")
    assert line.startswith("ferbench: error: no RAF-DB layout found")


@pytest.mark.parametrize("layout", ["official", "class_folders"])
def test_end_to_end_run(tmp_path: Path, fb_env: dict[str, str], layout: str) -> None:
    root = write_official(tmp_path / "basic") if layout == "official" else write_class_folders(tmp_path / "rafdb")
    summary = ferbench_json("run", "-m", "vit-baseline", "-d", "rafdb", "--data-root", str(root), *TINY_RUN,
                            env=fb_env)
    assert list(summary["folds"]) == ["0"] and 0 <= summary["folds"]["0"]["accuracy"] <= 1
    store = Store(fb_env["FERBENCH_DB"])
    (run,) = store.query("SELECT status, config FROM runs")
    assert run["status"] == "completed" and run["config"]["dataset"]["layout"] == "auto"
    (fold,) = store.query("SELECT n_train, n_test FROM folds")
    assert fold == {"n_train": 7 * TRAIN_PER_CLASS, "n_test": 7 * TEST_PER_CLASS - 1}
    assert summary["dataset"] == "rafdb"

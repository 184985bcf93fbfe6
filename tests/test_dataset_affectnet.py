"""AffectNet-7/8 plugin: the csv, npy and class-folder layouts, label mapping, face crops, counts,
the official protocol, `ferbench data check` and a tiny end-to-end run, on fixtures written in the
real on-disk layouts (with the quirks real copies have)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_RUN, assert_one_line_error, ferbench
from ferbench.emotions import BASIC8
from ferbench.errors import DataError, UsageError
from ferbench.protocols import build_manifest
from ferbench_plugins.affectnet import PROTOCOLS
from ferbench_plugins.affectnet.dataset import load7, load8

NATIVE = ["neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt"]
HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
BOX = (4, 2, 8, 10)  # x, y, w, h: white inside, black outside


def face_photo(path: Path, gray: bool = False) -> None:
    """A 20x16 'web photo' whose face box is white and the rest black."""
    pixels = np.zeros((20, 16), dtype=np.uint8)
    x, y, w, h = BOX
    pixels[y:y + h, x:x + w] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image if gray else image.convert("RGB")).save(path, quality=95)


def write_csv(path: Path, rows: list[str], header: bool) -> None:
    """CRLF line ends and no newline after the last row, as the files users have."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\r\n".join(([HEADER] if header else []) + rows).encode())


def row(relative: str, code: int) -> str:
    landmarks = ";".join(["1.5"] * 136)
    return f"{relative},{BOX[0]},{BOX[1]},{BOX[2]},{BOX[3]},{landmarks},{code},0.1,-0.2"


@pytest.fixture
def csv_root(tmp_path: Path) -> Path:
    """training.csv (header) + validation.csv (no header): 3 train and 2 test images per code 0-7, one
    image of each code 8-10, a duplicated row, a row without a path, a grayscale and an unreadable JPEG."""
    root = tmp_path / "affectnet-csv"
    images = root / "Manually_Annotated_Images"
    train, test = [], []
    for code in range(11):
        for k in range(3 if code < 8 else 1):
            relative = f"{100 + code}/train_{code}_{k}.jpg"
            face_photo(images / relative, gray=(code, k) == (2, 1))
            train.append(row(relative, code))
        for k in range(2 if code < 8 else 0):
            relative = f"{200 + code}/val_{code}_{k}.JPG"
            face_photo(images / relative)
            test.append(row(relative, code))
    train.append(row("101/train_1_0.jpg", 6))  # duplicated name with another label: the first row wins
    train.append(",1,2,3,4,,0,0,0")  # a row without an image path
    (images / "101" / "train_1_2.jpg").write_bytes(b"not a jpeg at all")
    write_csv(root / "Manually_Annotated_file_lists" / "training.csv", train, header=True)
    write_csv(root / "Manually_Annotated_file_lists" / "validation.csv", test, header=False)
    return root


@pytest.fixture
def npy_root(tmp_path: Path) -> Path:
    """train_set/val_set with integer-named images and `_exp.npy` codes (some stored as strings)."""
    root = tmp_path / "affectnet-npy"
    number = 0
    for folder, per_code in (("train_set", 2), ("val_set", 1)):
        for code in range(8):
            for _ in range(per_code):
                number += 1
                face_photo(root / folder / "images" / f"{number}.jpg")
                value = np.array(str(code)) if number % 2 else np.array(code, dtype=np.int64)
                (root / folder / "annotations").mkdir(parents=True, exist_ok=True)
                np.save(root / folder / "annotations" / f"{number}_exp.npy", value)
                np.save(root / folder / "annotations" / f"{number}_val.npy", np.array(0.5))
    return root


def test_csv_layout_maps_native_codes_and_excludes_8_to_10(csv_root: Path, capsys: pytest.CaptureFixture) -> None:
    data = load8(csv_root, {"layout": "auto", "crop": "face_box"})
    err = capsys.readouterr().err
    assert "1 duplicated name(s)" in err and "1 row(s) without an image path" in err
    assert data.classes == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert len(data) == 8 * 3 + 8 * 2
    labels = dict(zip(data.ids, (data.classes[i] for i in data.labels)))
    for code, name in enumerate(NATIVE):
        assert labels[f"Manually_Annotated_Images/{100 + code}/train_{code}_0.jpg"] == name
        assert labels[f"Manually_Annotated_Images/{200 + code}/val_{code}_1.JPG"] == name
    assert labels["Manually_Annotated_Images/101/train_1_0.jpg"] == "happiness"  # the first of the duplicates
    assert not any(i.split("/")[1] in ("108", "109", "110", "208") for i in data.ids)
    split = dict(zip(data.ids, data.split))
    assert split["Manually_Annotated_Images/100/train_0_0.jpg"] == "train"
    assert split["Manually_Annotated_Images/200/val_0_0.JPG"] == "test"
    assert data.files.tolist() == [str(csv_root / i) for i in data.ids]


def test_affectnet7_drops_contempt(csv_root: Path) -> None:
    data = load7(csv_root, {"layout": "csv", "crop": "face_box"})
    assert "contempt" not in data.classes and len(data.classes) == 7
    assert len(data) == 7 * 3 + 7 * 2
    assert not any("/107/" in i or "/207/" in i for i in data.ids)
    for split, per_class in (("train", 3), ("test", 2)):
        assert np.bincount(data.labels[data.split == split], minlength=7).tolist() == [per_class] * 7


def test_face_box_crop_is_an_option(csv_root: Path, fb_env: dict[str, str]) -> None:
    cropped = load8(csv_root, {"layout": "auto", "crop": "face_box"}).pixels(8)
    whole = load8(csv_root, {"layout": "auto", "crop": "none"}).pixels(8)
    assert len(cropped.unreadable) == 1 and len(whole.unreadable) == 1
    readable = np.setdiff1d(np.arange(len(cropped.arrays["rgb"])), cropped.unreadable)
    inside = np.asarray(cropped.arrays["rgb"])[readable]
    outside = np.asarray(whole.arrays["rgb"])[readable]
    assert inside.shape[1:] == (8, 8, 3) and inside.mean() > 240  # only the white face box is left
    assert outside.mean() < 200  # the whole photo keeps the black background


def test_unreadable_image_leaves_every_split(csv_root: Path, fb_env: dict[str, str]) -> None:
    data = load7(csv_root, {"layout": "auto", "crop": "face_box"})
    pixels = data.pixels(8)
    (bad,) = pixels.unreadable
    assert data.ids[bad] == "Manually_Annotated_Images/101/train_1_2.jpg"
    gray = data.index_of(["Manually_Annotated_Images/102/train_2_1.jpg"])[0]
    assert gray not in pixels.unreadable and pixels.arrays["rgb"][gray].shape == (8, 8, 3)
    manifest = build_manifest(data, "affectnet7", PROTOCOLS["official"])
    (fold,) = manifest.folds
    assert bad not in fold.train and bad not in fold.test
    assert len(fold.train) == 7 * 3 - 1 and len(fold.test) == 7 * 2 and len(fold.val) == 0
    assert set(data.split[fold.test]) == {"test"} and set(data.split[fold.train]) == {"train"}


def test_manifest_hash_is_stable_across_loads(csv_root: Path, fb_env: dict[str, str]) -> None:
    hashes = []
    for _ in range(2):
        data = load8(csv_root, {"layout": "auto", "crop": "face_box"})
        data.pixels(8)
        hashes.append(build_manifest(data, "affectnet8", PROTOCOLS["official"]).hash)
    assert hashes[0] == hashes[1]
    other = load7(csv_root, {"layout": "auto", "crop": "face_box"})
    other.pixels(8)
    assert build_manifest(other, "affectnet7", PROTOCOLS["official"]).hash != hashes[0]


def test_header_is_detected_in_either_file(csv_root: Path) -> None:
    lists = csv_root / "Manually_Annotated_file_lists"
    train = (lists / "training.csv").read_bytes().split(b"\r\n", 1)[1]  # drop the header ...
    test = (lists / "validation.csv").read_bytes()
    (lists / "training.csv").write_bytes(train)
    (lists / "validation.csv").write_bytes(HEADER.encode() + b"\n" + test + b"\n")  # ... and add one here
    data = load8(csv_root, {"layout": "auto", "crop": "none"})
    assert len(data) == 8 * 3 + 8 * 2


def test_csv_files_in_the_data_root_are_accepted(csv_root: Path) -> None:
    for name in ("training.csv", "validation.csv"):
        (csv_root / "Manually_Annotated_file_lists" / name).rename(csv_root / name)
    assert len(load7(csv_root, {"layout": "auto", "crop": "none"})) == 7 * 5


def test_bad_expression_is_a_data_error_with_the_line(csv_root: Path) -> None:
    path = csv_root / "Manually_Annotated_file_lists" / "validation.csv"
    path.write_bytes(path.read_bytes() + b"\r\n" + row("200/val_0_0.JPG", 0).replace(",0,0.1", ",happy,0.1").encode())
    with pytest.raises(DataError, match=r"validation\.csv:17: expression 'happy'"):
        load8(csv_root, {"layout": "auto", "crop": "none"})


def test_npy_layout(npy_root: Path) -> None:
    data = load8(npy_root, {"layout": "auto", "crop": "face_box"})
    assert len(data) == 8 * 3
    ids = data.ids.tolist()
    assert ids[:3] == ["train_set/images/1.jpg", "train_set/images/2.jpg", "train_set/images/3.jpg"]
    labels = dict(zip(ids, (data.classes[i] for i in data.labels)))
    assert labels["train_set/images/5.jpg"] == "sadness"  # code 2, stored as the string '2'
    assert labels["train_set/images/14.jpg"] == "anger"  # code 6, stored as an integer
    assert labels["val_set/images/24.jpg"] == "contempt"
    assert (data.split == "test").sum() == 8
    assert len(load7(npy_root, {"layout": "npy", "crop": "none"})) == 7 * 3


def test_npy_code_out_of_range_is_a_data_error(npy_root: Path) -> None:
    np.save(npy_root / "val_set" / "annotations" / "3_exp.npy", np.array(12))
    with pytest.raises(DataError, match=r"3_exp\.npy: expression '12' is not a code 0-10"):
        load8(npy_root, {"layout": "auto", "crop": "none"})


@pytest.mark.parametrize(("names", "test_folder"), [
    ([str(c) for c in range(11)], "val"),  # DAN / FMAE: native codes as folder names
    (["Neutral", "Happiness", "Sad", "Surprise", "Fear", "Disgust", "Angry", "Contempt", "None", "Uncertain",
      "No-Face"], "test"),  # HSEmotion-style names
])
def test_imagefolder_layouts(tmp_path: Path, names: list[str], test_folder: str) -> None:
    for split, count in (("train", 2), (test_folder, 1)):
        for code, folder in enumerate(names):
            for k in range(count):
                face_photo(tmp_path / split / folder / f"{code}{k}.jpg")
    data = load8(tmp_path, {"layout": "auto", "crop": "face_box"})
    assert len(data) == 8 * 3
    labels = dict(zip(data.ids, (data.classes[i] for i in data.labels)))
    for code, name in enumerate(NATIVE):
        assert labels[f"train/{names[code]}/{code}1.jpg"] == name
        assert labels[f"{test_folder}/{names[code]}/{code}0.jpg"] == name
    assert (data.split == "test").sum() == 8
    face_photo(tmp_path / "train" / "sleepy" / "x.jpg")
    with pytest.raises(DataError, match="neither a native AffectNet code"):
        load8(tmp_path, {"layout": "imagefolder", "crop": "none"})


def test_layout_errors(tmp_path: Path, csv_root: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(DataError, match="no AffectNet layout found.*csv: .*npy: .*imagefolder: "):
        load8(empty, {"layout": "auto", "crop": "none"})
    with pytest.raises(DataError, match=r"missing .*train_set.*annotations; expected layout"):
        load8(csv_root, {"layout": "npy", "crop": "none"})
    with pytest.raises(UsageError, match="dataset.layout"):
        load8(csv_root, {"layout": "zip", "crop": "none"})


def test_data_check_cli(csv_root: Path, fb_env: dict[str, str]) -> None:
    result = ferbench("data", "check", "-d", "affectnet8", "--data-root", str(csv_root), "--json", env=fb_env)
    report = json.loads(result.stdout)
    assert report["counts"]["train"] == {name: 3 for name in BASIC8}
    assert report["counts"]["test"]["contempt"] == 2 and report["samples"] == 40
    assert report["reference_counts"]["train"]["happiness"] == 134415
    assert report["reference_counts"]["test"] == {name: 500 for name in BASIC8}
    assert report["unreadable"] == [str(csv_root / "Manually_Annotated_Images" / "101" / "train_1_2.jpg")]
    assert "duplicated" in result.stderr
    text = ferbench("data", "check", "-d", "affectnet7", "--data-root", str(csv_root), env=fb_env).stdout
    assert "unreadable images: 1" in text and "train_1_2.jpg" in text
    assert any(line.split()[:4] == ["test", "fear", "2", "500"] for line in text.splitlines())


def test_data_check_missing_label_file(csv_root: Path, fb_env: dict[str, str]) -> None:
    (csv_root / "Manually_Annotated_file_lists" / "validation.csv").unlink()
    result = ferbench("data", "check", "-d", "affectnet7", "--data-root", str(csv_root), check=False, env=fb_env)
    assert_one_line_error(result, "missing", "validation.csv", "expected layout")


def test_end_to_end_run_with_balanced_sampling(csv_root: Path, fb_env: dict[str, str]) -> None:
    result = ferbench("run", "-m", "vit-baseline", "-d", "affectnet7", "--data-root", str(csv_root), *TINY_RUN,
                      "--set", "train.balanced_sampling=true", "--json", env=fb_env)
    summary = json.loads(result.stdout)
    assert summary["protocol"] == "official" and list(summary["folds"]) == ["0"]
    assert 0.0 <= summary["folds"]["0"]["accuracy"] <= 1.0
    assert "1 unreadable image(s)" in result.stderr

"""CK+ plugin: the official sequence layout and CK+48, frame selection, label mapping, counts, the
subject-independent 10-fold protocol, `ferbench data check` and a tiny end-to-end run, on fixtures
written in the real on-disk layouts (with the quirks real copies have)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_RUN, assert_one_line_error, ferbench
from ferbench.errors import DataError, UsageError
from ferbench.protocols import build_manifest
from ferbench_plugins.ckplus import PROTOCOLS
from ferbench_plugins.ckplus.dataset import load7, load8

CK_NAMES = ["neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]
DEFAULTS = {"layout": "auto", "last_frames": 3, "neutral_frames": 1}
SUBJECTS = [f"S{5 * i + 5:03d}" for i in range(21)]  # S005, S010, ..., S105
FRAMES = 5


def frame(path: Path, value: int, color: bool = False) -> None:
    """A small grayscale PNG (most CK+ frames) or an RGB one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.full((12, 10), value, dtype=np.uint8))
    (image.convert("RGB") if color else image).save(path)


def emotion_file(path: Path, code: int) -> None:
    """One float as CK+ writes it, CRLF and no final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"   {code:.7e}\r\n".encode().rstrip(b"\n"))


def sequence_code(index: int) -> int:
    return 1 + index % 7  # cycles through anger .. surprise


#: Subjects whose only labelled sequence is contempt: S010, S045, S080 (absent from ``ckplus``).
CONTEMPT_ONLY = {s for i, s in enumerate(SUBJECTS) if CK_NAMES[sequence_code(i)] == "contempt"}


@pytest.fixture
def ck_root(tmp_path: Path) -> Path:
    """21 subjects with one labelled sequence of 5 frames each (codes cycling 1-7), plus an unlabelled
    sequence, a sequence with two emotion files, a colour frame and an unreadable frame."""
    root = tmp_path / "CK+"
    for index, subject in enumerate(SUBJECTS):
        for n in range(1, FRAMES + 1):
            frame(root / "cohn-kanade-images" / subject / "001" / f"{subject}_001_{n:08d}.png", 20 * n,
                  color=(index, n) == (3, 5))
        emotion_file(root / "Emotion" / subject / "001" / f"{subject}_001_{FRAMES:08d}_emotion.txt",
                     sequence_code(index))
    for n in range(1, 4):  # unlabelled sequence: its Emotion folder is empty
        frame(root / "cohn-kanade-images" / "S005" / "002" / f"S005_002_{n:08d}.png", 7)
    (root / "Emotion" / "S005" / "002").mkdir(parents=True)
    emotion_file(root / "Emotion" / "S010" / "001" / "S010_001_00000006_emotion.txt", 7)  # a stale second file
    (root / "cohn-kanade-images" / "S015" / "001" / "S015_001_00000004.png").write_bytes(b"\x89PNG garbage")
    (root / "cohn-kanade-images" / "S015" / "001" / ".DS_Store").write_bytes(b"\0")
    return root


def class_of(data, sample_id: str) -> str:  # noqa: ANN001 - FERData
    return data.classes[data.labels[data.index_of([sample_id])[0]]]


def test_last_frames_get_the_label_and_the_first_frame_is_neutral(ck_root: Path, capsys: pytest.CaptureFixture) -> None:
    data = load8(ck_root, DEFAULTS)
    assert "1 extra emotion file" in capsys.readouterr().err
    assert data.classes[-1] == "contempt" and len(data.classes) == 8
    assert len(data) == 21 * 4
    for index, subject in enumerate(SUBJECTS):
        name = CK_NAMES[sequence_code(index)]
        base = f"cohn-kanade-images/{subject}/001/{subject}_001_"
        assert [class_of(data, f"{base}{n:08d}.png") for n in (3, 4, 5)] == [name] * 3
        assert class_of(data, f"{base}00000001.png") == "neutral"
        assert f"{base}00000002.png" not in data.ids
    assert class_of(data, "cohn-kanade-images/S010/001/S010_001_00000005.png") == "contempt"  # first file wins
    assert not any("/002/" in i for i in data.ids)
    assert data.subjects[data.index_of(["cohn-kanade-images/S035/001/S035_001_00000004.png"])[0]] == "S035"
    assert data.split is None and data.files.tolist() == [str(ck_root / i) for i in data.ids]


def test_ckplus_leaves_contempt_sequences_out_entirely(ck_root: Path) -> None:
    data = load7(ck_root, DEFAULTS)
    assert data.classes == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
    contempt = [s for i, s in enumerate(SUBJECTS) if sequence_code(i) == 2]
    assert len(contempt) == 3 and not any(s in data.subjects for s in contempt)
    counts = np.bincount(data.labels, minlength=7)
    assert counts.tolist() == [18, 9, 9, 9, 9, 9, 9]  # 18 sequences: 3 peak frames each + 1 neutral


@pytest.mark.parametrize(("last", "neutral", "per_sequence"), [(1, 0, 1), (2, 2, 4), (4, 3, 5)])
def test_frame_options(ck_root: Path, last: int, neutral: int, per_sequence: int) -> None:
    data = load8(ck_root, {"layout": "official", "last_frames": last, "neutral_frames": neutral})
    assert len(data) == 21 * per_sequence
    first = "cohn-kanade-images/S020/001/S020_001_00000001.png"
    if neutral:
        assert class_of(data, first) == "neutral"
    if last == 4:  # frames 2-5 are peak frames, so only frame 1 can be neutral
        assert class_of(data, "cohn-kanade-images/S020/001/S020_001_00000002.png") == "fear"
    with pytest.raises(UsageError, match="dataset.last_frames"):
        load8(ck_root, {"layout": "auto", "last_frames": 0, "neutral_frames": 1})


def test_frames_after_the_labelled_peak_are_ignored(ck_root: Path) -> None:
    frame(ck_root / "cohn-kanade-images" / "S020" / "001" / "S020_001_00000006.png", 99)
    data = load8(ck_root, {"layout": "auto", "last_frames": 1, "neutral_frames": 0})
    assert "cohn-kanade-images/S020/001/S020_001_00000005.png" in data.ids
    assert not any(i.endswith("_00000006.png") for i in data.ids)


@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")  # 8 fear rows < 10 folds
def test_subject_independent_10_folds(ck_root: Path, fb_env: dict[str, str]) -> None:
    data = load7(ck_root, DEFAULTS)
    pixels = data.pixels(8)
    (bad,) = pixels.unreadable
    assert data.ids[bad] == "cohn-kanade-images/S015/001/S015_001_00000004.png"
    colour = data.index_of(["cohn-kanade-images/S020/001/S020_001_00000005.png"])[0]
    assert pixels.arrays["rgb"][colour].shape == (8, 8, 3)
    manifest = build_manifest(data, "ckplus", PROTOCOLS["subject-10fold"])
    assert len(manifest.folds) == 10
    person = np.asarray([sample_id.split("/")[1] for sample_id in data.ids])  # Sxxx from the frame path
    assert (data.subjects == person).all()
    tested = np.concatenate([fold.test for fold in manifest.folds])
    assert sorted(tested.tolist()) == sorted(set(range(len(data))) - {bad})  # every usable row tested once
    for fold in manifest.folds:
        assert len(fold.test) > 0
        assert not set(person[fold.train]) & set(person[fold.test])
        assert len(fold.train) + len(fold.test) == len(data) - 1
    again = load7(ck_root, DEFAULTS)
    again.pixels(8)
    assert build_manifest(again, "ckplus", PROTOCOLS["subject-10fold"]).hash == manifest.hash


def test_archive_folders_one_level_down(ck_root: Path) -> None:
    nested = ck_root.parent / "nested"
    (nested / "extended-cohn-kanade-images").mkdir(parents=True)
    (nested / "Emotion_labels").mkdir()
    (ck_root / "cohn-kanade-images").rename(nested / "extended-cohn-kanade-images" / "cohn-kanade-images")
    (ck_root / "Emotion").rename(nested / "Emotion_labels" / "Emotion")
    data = load7(nested, DEFAULTS)
    assert len(data) == 18 * 4
    assert data.ids[0].startswith("extended-cohn-kanade-images/cohn-kanade-images/S005/001/")


def test_bad_emotion_file_and_missing_layout(ck_root: Path, tmp_path: Path) -> None:
    path = ck_root / "Emotion" / "S025" / "001" / "S025_001_00000005_emotion.txt"
    path.write_text("   9.0000000e+00")
    with pytest.raises(DataError, match="S025_001_00000005_emotion.txt holds .*not an emotion code 0-7"):
        load7(ck_root, DEFAULTS)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no CK\\+ layout found.*official: .*ck48: "):
        load7(empty, DEFAULTS)


def test_missing_image_folder_names_the_frames(ck_root: Path, fb_env: dict[str, str]) -> None:
    for png in (ck_root / "cohn-kanade-images" / "S030" / "001").iterdir():
        png.unlink()
    (ck_root / "cohn-kanade-images" / "S030" / "001").rmdir()
    result = ferbench("data", "check", "-d", "ckplus", "--data-root", str(ck_root), "--json", env=fb_env)
    missing = json.loads(result.stdout)["missing"]
    expected = ck_root / "cohn-kanade-images" / "S030" / "001"
    assert missing == [str(expected / f"S030_001_{n:08d}.png") for n in (3, 4, 5, 1)]


@pytest.fixture
def ck48_root(tmp_path: Path) -> Path:
    """CK+48: class folders with the last 3 frames of each sequence, named Sxxx_nnn_<frame>.png."""
    root = tmp_path / "kaggle"
    folders = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    for index, subject in enumerate(SUBJECTS[:14]):
        folder = folders[index % 7]
        for n in (15, 16, 17):
            frame(root / "CK+48" / folder / f"{subject}_004_{n:08d}.png", 10 * n)
    frame(root / "CK+48" / "surprise" / "S005_004_00000017.png", 1)  # also in anger/: duplicated name
    return root


def test_ck48_layout_rebuilds_subjects(ck48_root: Path, capsys: pytest.CaptureFixture) -> None:
    data = load8(ck48_root, DEFAULTS)
    err = capsys.readouterr().err
    assert "1 duplicated file name" in err and "no neutral frames" in err
    assert len(data) == 14 * 3
    assert class_of(data, "CK+48/anger/S005_004_00000017.png") == "anger"
    assert class_of(data, "CK+48/happy/S025_004_00000016.png") == "happiness"
    assert data.subjects[data.index_of(["CK+48/sadness/S030_004_00000015.png"])[0]] == "S030"
    assert np.bincount(data.labels, minlength=8)[0] == 0  # no neutral class in CK+48
    assert len(load7(ck48_root, DEFAULTS)) == 12 * 3
    peaks = load8(ck48_root, {"layout": "ck48", "last_frames": 1, "neutral_frames": 0})
    assert len(peaks) == 14 and all(i.endswith("_00000017.png") for i in peaks.ids)
    frame(ck48_root / "CK+48" / "fear" / "frame17.png", 3)
    with pytest.raises(DataError, match="CK\\+48 names are Sxxx_nnn_<frame>.png"):
        load8(ck48_root, DEFAULTS)


def test_data_check_cli(ck_root: Path, fb_env: dict[str, str]) -> None:
    result = ferbench("data", "check", "-d", "ckplus", "--data-root", str(ck_root), "--json", env=fb_env)
    report = json.loads(result.stdout)
    assert report["counts"] == {"all": {"neutral": 18, "happiness": 9, "surprise": 9, "sadness": 9, "anger": 9,
                                        "disgust": 9, "fear": 9}}
    assert report["reference_counts"]["all"] == {"neutral": 309, "happiness": 207, "surprise": 249, "sadness": 84,
                                                  "anger": 135, "disgust": 177, "fear": 75}
    assert report["unreadable"] == [str(ck_root / "cohn-kanade-images/S015/001/S015_001_00000004.png")]
    assert report["missing"] == [] and "extra emotion file" in result.stderr
    text = ferbench("data", "check", "-d", "ckplus8", "--data-root", str(ck_root), "--set",
                    "dataset.last_frames=2", env=fb_env).stdout
    assert any(line.split() == ["all", "contempt", "6", "54", "-48"] for line in text.splitlines())
    assert "unreadable images: 1" in text and "S015_001_00000004.png" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "dataset.neutral_frames=-1"], "dataset.neutral_frames: expected an integer >= 0"),
    (["--set", "dataset.layout=ck48"], "no CK+48 class folders"),
])
def test_data_check_errors_are_one_line(ck_root: Path, fb_env: dict[str, str], args: list[str], message: str) -> None:
    result = ferbench("data", "check", "-d", "ckplus", "--data-root", str(ck_root), *args, check=False, env=fb_env)
    assert_one_line_error(result, message)


def test_data_check_missing_label_folder(ck_root: Path, fb_env: dict[str, str]) -> None:
    for path in sorted((ck_root / "Emotion").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (ck_root / "Emotion").rmdir()
    result = ferbench("data", "check", "-d", "ckplus", "--data-root", str(ck_root), "--set",
                      "dataset.layout=official", check=False, env=fb_env)
    assert_one_line_error(result, "missing", "Emotion", "expected layout")


def test_end_to_end_run_records_ten_folds(ck_root: Path, fb_env: dict[str, str]) -> None:
    result = ferbench("run", "-m", "vit-baseline", "-d", "ckplus", "--data-root", str(ck_root), *TINY_RUN, "--json",
                      env=fb_env)
    summary = json.loads(result.stdout)
    assert summary["protocol"] == "subject-10fold"
    assert sorted(summary["folds"], key=int) == [str(k) for k in range(10)]
    assert all(0.0 <= fold["accuracy"] <= 1.0 for fold in summary["folds"].values())


def test_emotion_fan_folds_give_every_tenth_subject(ck_root: Path) -> None:
    from ferbench.plugins import registry
    from ferbench.protocols import build_manifest

    data = load7(ck_root, DEFAULTS)
    ranked = sorted(set(load8(ck_root, DEFAULTS).subjects.tolist()))  # every subject with a labelled sequence
    spec = registry().dataset("ckplus").protocols["emotion-fan-10fold"]
    manifest = build_manifest(data, "ckplus", spec)
    for k, fold in enumerate(manifest.folds):
        assert set(data.subjects[fold.test].tolist()) == set(ranked[k::10]) - CONTEMPT_ONLY
        assert not set(data.subjects[fold.test].tolist()) & set(data.subjects[fold.train].tolist())


def test_emotion_fan_fold_of_a_subject_is_the_same_on_ckplus_and_ckplus8(ck_root: Path) -> None:
    """Subjects are ranked before contempt is left out: ranking after the filter would drop the
    contempt-only S010 and move S015 (rank 2 of ckplus8) to fold 1 on ckplus."""
    seven, eight = load7(ck_root, DEFAULTS), load8(ck_root, DEFAULTS)
    fold_of = {data.classes: dict(zip(data.subjects.tolist(), data.fold.tolist())) for data in (seven, eight)}
    assert CONTEMPT_ONLY == {"S010", "S045", "S080"} and CONTEMPT_ONLY <= set(fold_of[eight.classes])
    assert CONTEMPT_ONLY.isdisjoint(fold_of[seven.classes])
    assert fold_of[eight.classes]["S015"] == 2 and fold_of[seven.classes]["S015"] == 2
    assert all(fold_of[eight.classes][subject] == k for subject, k in fold_of[seven.classes].items())
    assert sorted(fold_of[eight.classes], key=fold_of[eight.classes].get)[:3] == ["S005", "S055", "S105"]

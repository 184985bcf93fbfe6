"""RGB-D plugins (CalD3rMenD3s, BU-3DFE, Bosphorus, their merged set): parsing, label mapping, options,
protocols, pixels, `ferbench data check` and tiny end-to-end runs, on fixtures written in the real
on-disk layouts with the quirks real copies have (grayscale and unreadable images, missing partner
files, .bmp/.png duplicates, aligned_ copies, files with unexpected names, re-packaged sub-folders).
Mesh and range-scan geometry is tested in test_dataset_rgbd_geometry.py."""
from __future__ import annotations

from dataclasses import replace

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_RUN, assert_one_line_error, ferbench
from ferbench.emotions import BASIC7
from ferbench.errors import DataError, UsageError
from ferbench.protocols import build_manifest
from ferbench_plugins.rgbd import SPECS, bosphorus, bu3dfe, caldermends, merged
from ferbench_plugins.rgbd.common import read_depth

SPEC = {spec.name: spec for spec in SPECS}
BU_CODES = {"AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happiness", "SA": "sadness", "SU": "surprise"}
BU_SUBJECTS = ["F0001", "F0002", "M0001", "M0002", "M0003"]
BOS_SUBJECTS = [f"bs{i:03d}" for i in range(5)]
BOS_SCANS = ["E_ANGER_0", "E_DISGUST_0", "E_FEAR_0", "E_HAPPY_0", "E_SADNESS_0", "E_SURPRISE_0", "N_N_0", "N_N_1",
             "LFAU_24_0", "LFAU_9_0", "LFAU_12_0", "LFAU_15_0", "UFAU_1_0", "UFAU_2_0", "LFAU_10_0", "YR_R10_0",
             "O_EYE_0"]
CM_SUBJECTS = {"CalD3r": ["F_001", "M_001", "F_002"], "MenD3s": ["F_01", "M_01", "M_02"]}


# ------------------------------------------------------------------------------------------- writers
def rgb(path: Path, seed: int, gray: bool = False, fmt: str | None = None) -> None:
    """A tiny colour (or grayscale) image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    (image.convert("L") if gray else image).save(path, format=fmt)


def depth16(path: Path) -> None:
    """A 16-bit distance map: background 0, the face's centre nearest (smallest value)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:8, :8]
    distance = 400 + 40 * np.hypot(yy - 3.5, xx - 3.5)
    distance[[0, -1], :] = 0
    distance[:, [0, -1]] = 0
    Image.fromarray(distance.astype(np.uint16)).save(path)


def garbage(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image \x00\x01\x02")


def write_bnt(path: Path, z: np.ndarray, zmin: float = -1e9, name: str = "scan.png",
              uv: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """A .bnt range scan (grid ``z`` and texture coordinates ``uv`` given top row first; the file stores
    rows bottom-up). By default the grid spans its whole image: u = (col + 1/2) / ncols, v = (row + 1/2) / nrows."""
    nrows, ncols = z.shape
    yy, xx = np.mgrid[:nrows, :ncols].astype(np.float64)
    u, v = uv if uv is not None else ((xx + 0.5) / ncols, (yy + 0.5) / nrows)
    planes = [xx, -yy, z, u, v]
    body = b"".join(np.ascontiguousarray(plane[::-1]).astype("<f8").tobytes() for plane in planes)
    header = struct.pack("<HHdH", nrows, ncols, zmin, len(name)) + name.encode() + struct.pack("<I", 5 * z.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body)


def dome(nrows: int = 6, ncols: int = 5, zmin: float = -1e9) -> np.ndarray:
    """A face-like scan: nearest (largest z) in the middle, background in the corners."""
    yy, xx = np.mgrid[:nrows, :ncols]
    z = 100.0 - 5 * np.hypot(yy - (nrows - 1) / 2, xx - (ncols - 1) / 2)
    z[0, 0] = z[0, -1] = z[-1, 0] = z[-1, -1] = zmin
    return z


def make_caldermends(root: Path) -> Path:
    """CalD3r/MenD3s: 6 subjects x (7 emotions + a second neutral), with quirks."""
    seed = 0
    for database, subjects in CM_SUBJECTS.items():
        for subject in subjects:
            for label in BASIC7:
                for code in ("1", "2") if label == "neutral" else ("1",):
                    folder = root / database / label.capitalize()
                    stem = f"{subject}_{code}_{label}"
                    seed += 1
                    gray = database == "CalD3r" and subject == "M_001" and label == "fear"
                    rgb(folder / "RGB" / f"{stem}_Color.png", seed, gray=gray)
                    if not (database == "MenD3s" and subject == "M_02" and label == "happiness"):
                        depth16(folder / "DEPTH" / f"{stem}_Depth.png")
    anger = root / "CalD3r" / "Anger"
    rgb(anger / "RGB" / "aligned_F_001_1_anger_Color.png", 999)  # an aligned copy beside the original
    depth16(anger / "DEPTH" / "aligned_F_001_1_anger_Depth.png")
    garbage(root / "MenD3s" / "Sadness" / "RGB" / "F_01_1_sadness_Color.png")  # unreadable
    (anger / "RGB" / "Thumbs.db").write_bytes(b"\x00")  # unexpected name
    for emotion, stem in (("Disgust", "F_002_9_anger"), ("Anger", "F_002_1_surprise")):  # misfiled; a copy
        rgb(root / "CalD3r" / emotion / "RGB" / f"{stem}_Color.png", 998)
        depth16(root / "CalD3r" / emotion / "DEPTH" / f"{stem}_Depth.png")
    return root


def make_bu3dfe(root: Path, subjects: list[str] = BU_SUBJECTS, quirks: bool = True) -> Path:
    """BU-3DFE subject folders: NE00 + 6 expressions x 4 levels, .bmp textures, 16-bit depth maps."""
    races = ["WH", "BL", "AE", "AM", "IN", "LA"]
    for number, subject in enumerate(subjects):
        race = races[number % len(races)]
        stems = [f"{subject}_NE00{race}"] + [f"{subject}_{code}{level:02d}{race}" for code in BU_CODES
                                             for level in range(1, 5)]
        for index, stem in enumerate(stems):
            rgb(root / subject / f"{stem}_F2D.bmp", number * 100 + index, gray=quirks and stem == "F0002_HA02BL",
                fmt="BMP")
            if not (quirks and stem == "M0002_DI04AM"):
                depth16(root / subject / f"{stem}_F3D_depth.png")
    if quirks:
        rgb(root / "F0001" / "F0001_AN01WH_F2D.png", 7)  # .png duplicate of a .bmp texture
        garbage(root / "M0001" / "M0001_SU03AE_F2D.bmp")
    return root


def make_bosphorus(root: Path) -> Path:
    """Bosphorus subject folders with emotion, neutral, AU, pose and occlusion scans (.png + .bnt)."""
    for number, subject in enumerate(BOS_SUBJECTS):
        for index, scan in enumerate(BOS_SCANS):
            stem = f"{subject}_{scan}"
            rgb(root / subject / f"{stem}.png", number * 100 + index, gray=stem == "bs004_N_N_0")
            if stem != "bs001_N_N_1":
                write_bnt(root / subject / f"{stem}.bnt", dome(), name=f"{stem}.png")
    garbage(root / "bs002" / "bs002_E_HAPPY_0.bnt")
    garbage(root / "bs003" / "bs003_E_SADNESS_0.png")
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One fixture of each dataset, plus the merged layout (BU-3DFE re-packaged under Subjects/)."""
    base = tmp_path_factory.mktemp("rgbd")
    union = base / "merged"
    return {"caldermends": make_caldermends(base / "caldermends"), "bu3dfe": make_bu3dfe(base / "bu3dfe"),
            "bosphorus": make_bosphorus(base / "bosphorus"),
            "merged": (make_caldermends(union / "CalD3RMenD3s"), make_bu3dfe(union / "BU3DFE" / "Subjects"),
                       make_bosphorus(union / "Bosphorus"), union)[-1]}


def counts(data) -> dict[str, int]:  # noqa: ANN001 - FERData
    found = Counter(data.classes[label] for label in data.labels.tolist())
    return {name: found.get(name, 0) for name in BASIC7}


def by_id(data) -> dict[str, str]:  # noqa: ANN001
    return {sample: BASIC7[label] for sample, label in zip(data.ids, data.labels)}


# -------------------------------------------------------------------------------------- CalD3rMenD3s
def test_caldermends_labels_subjects_and_quirks(roots: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    data = caldermends.load(roots["caldermends"], {})
    err = capsys.readouterr().err
    assert counts(data) == {"neutral": 12, "happiness": 5, "surprise": 6, "sadness": 6, "anger": 7, "disgust": 6,
                            "fear": 6}
    labels = by_id(data)
    assert labels["CalD3r/Disgust/RGB/F_002_9_anger_Color.png"] == "anger"  # the name's label wins
    assert "CalD3r/Surprise/RGB/F_002_1_surprise_Color.png" in labels  # of two copies, the correctly filed
    assert "CalD3r/Anger/RGB/F_002_1_surprise_Color.png" not in labels
    assert labels["MenD3s/Surprise/RGB/M_01_1_surprise_Color.png"] == "surprise"
    assert labels["CalD3r/Neutral/RGB/F_002_2_neutral_Color.png"] == "neutral"
    # the aligned copy replaces its original; the image without a depth partner is left out
    assert "CalD3r/Anger/RGB/aligned_F_001_1_anger_Color.png" in labels
    assert "CalD3r/Anger/RGB/F_001_1_anger_Color.png" not in labels
    assert "MenD3s/Happiness/RGB/M_02_1_happiness_Color.png" not in labels
    assert set(data.subjects) == {"CalD3r-F-001", "CalD3r-M-001", "CalD3r-F-002", "MenD3s-F-01", "MenD3s-M-01",
                                  "MenD3s-M-02"}
    assert "1 CalD3r/MenD3s image(s) without a _Depth.png partner" in err
    assert "1 CalD3r/MenD3s image(s) whose <Emotion> folder disagrees" in err
    assert "1 CalD3r/MenD3s image(s) duplicating a sample already read" in err
    assert "1 file(s) with unexpected names" in err and "Thumbs.db" in err
    assert all(Path(f).is_file() for f in data.files)


def test_caldermends_options(roots: dict[str, Path]) -> None:
    root = roots["caldermends"]
    six = caldermends.load(root, {"classes": 6})
    assert counts(six)["surprise"] == 0 and len(six) == 48 - 6
    assert six.classes == tuple(c for c in BASIC7 if c != "surprise")
    originals = by_id(caldermends.load(root, {"aligned": "no"}))
    assert "CalD3r/Anger/RGB/F_001_1_anger_Color.png" in originals and len(originals) == 48
    assert list(caldermends.load(root, {"aligned": "yes"}).ids) == ["CalD3r/Anger/RGB/aligned_F_001_1_anger_Color.png"]
    menders = caldermends.load(root, {"databases": "MenD3s"})
    assert {s.split("-")[0] for s in menders.subjects} == {"MenD3s"} and len(menders) == 23
    with pytest.raises(UsageError, match="dataset.classes"):
        caldermends.load(root, {"classes": 5})
    with pytest.raises(DataError, match="no CalD3r/MenD3s data found"):
        caldermends.load(root, {"layout": "nested"})


def test_caldermends_depth_is_inverted_to_nearer_brighter(roots: dict[str, Path]) -> None:
    path = roots["caldermends"] / "CalD3r" / "Fear" / "DEPTH" / "F_001_1_fear_Depth.png"
    stored, inverted = read_depth(path, "png")[..., 0], read_depth(path, "png-invert")[..., 0]
    assert stored[0, 0] == inverted[0, 0] == 0  # background stays 0
    assert stored[3, 3] < stored[1, 1] and inverted[3, 3] > inverted[1, 1]  # the centre is nearest
    assert (inverted > 0).sum() == (stored > 0).sum()


# -------------------------------------------------------------------------------------------- BU-3DFE
def test_bu3dfe_labels_subjects_and_quirks(roots: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    data = bu3dfe.load(roots["bu3dfe"], {})
    err = capsys.readouterr().err
    assert counts(data) == {"neutral": 5, "happiness": 20, "surprise": 20, "sadness": 20, "anger": 20,
                            "disgust": 19, "fear": 20}
    labels = by_id(data)
    assert labels["F0001/F0001_AN01WH_F2D.bmp"] == "anger" and "F0001/F0001_AN01WH_F2D.png" not in labels
    assert labels["M0003/M0003_FE02IN_F2D.bmp"] == "fear" and labels["F0002/F0002_NE00BL_F2D.bmp"] == "neutral"
    assert sorted(set(data.subjects)) == sorted(BU_SUBJECTS)
    assert dict(zip(data.ids, data.subjects))["M0001/M0001_SA04AE_F2D.bmp"] == "M0001"
    assert "1 BU-3DFE texture(s) present as both .bmp and .png" in err
    assert "1 BU-3DFE sample(s) without a depth map left out" in err and "bu3dfe-depth" in err


def test_bu3dfe_options(roots: dict[str, Path]) -> None:
    root = roots["bu3dfe"]
    top2 = bu3dfe.load(root, {"intensities": "top2"})
    assert len(top2) == 5 * 13 - 1 and all(i.split("_")[1][2:4] in ("00", "03", "04") for i in top2.ids)
    six = bu3dfe.load(root, {"classes": 6, "intensities": "top2"})
    assert counts(six)["neutral"] == 0 and len(six) == 5 * 12 - 1 and six.classes == BASIC7[1:]
    subset = bu3dfe.load(root, {"subject_subset": 3, "subset_seed": 1})
    assert len(set(subset.subjects)) == 3
    assert list(bu3dfe.load(root, {"subject_subset": 3, "subset_seed": 1}).ids) == list(subset.ids)
    draws = {frozenset(bu3dfe.load(root, {"subject_subset": 3, "subset_seed": seed}).subjects) for seed in range(6)}
    assert len(draws) > 1  # the seed picks the subjects
    with pytest.raises(UsageError, match="subject_subset=9"):
        bu3dfe.load(root, {"subject_subset": 9})


def test_bu3dfe_without_depth_maps_names_the_converter(tmp_path: Path) -> None:
    root = tmp_path / "BU3DFE"
    rgb(root / "F0001" / "F0001_HA04WH_F2D.bmp", 1, fmt="BMP")
    with pytest.raises(DataError, match=r"no BU-3DFE depth maps .* `ferbench bu3dfe-depth --data-root "):
        bu3dfe.load(root, {})


# ------------------------------------------------------------------------------------------ Bosphorus
def test_bosphorus_labels_and_au_mapping(roots: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    root = roots["bosphorus"]
    data = bosphorus.load(root, {})
    assert "1 Bosphorus scan(s) without a .bnt file left out" in capsys.readouterr().err
    assert counts(data) == {"neutral": 9, "happiness": 5, "surprise": 5, "sadness": 5, "anger": 5, "disgust": 5,
                            "fear": 5}
    labels = by_id(data)
    assert labels["bs000/bs000_E_HAPPY_0.png"] == "happiness" and labels["bs003/bs003_N_N_1.png"] == "neutral"
    assert "bs001/bs001_N_N_1.png" not in labels
    assert not any("AU" in sample or "YR" in sample for sample in labels)
    assert set(data.subjects) == set(BOS_SUBJECTS)
    mapped = by_id(bosphorus.load(root, {"au_mapping": True}))
    expected = {"LFAU_24": "anger", "LFAU_9": "disgust", "LFAU_12": "happiness", "LFAU_15": "sadness",
                "UFAU_1": "fear", "UFAU_2": "surprise"}
    for scan, name in expected.items():
        assert mapped[f"bs002/bs002_{scan}_0.png"] == name
    assert len(mapped) == 39 + 30 and "bs002/bs002_LFAU_10_0.png" not in mapped
    first = bosphorus.load(root, {"neutral": "first"})
    neutral = [i for i, label in by_id(first).items() if label == "neutral"]
    assert sorted(neutral) == [f"{s}/{s}_N_N_0.png" for s in BOS_SUBJECTS]


# ------------------------------------------------------------------------------------------- merged
def test_merged_prefixes_ids_and_subjects_and_uses_the_thesis_parts(roots: dict[str, Path]) -> None:
    data = merged.load(roots["merged"], {})
    parts = Counter(sample.split("/")[0] for sample in data.ids)
    assert parts == {"CalD3RMenD3s": 48, "BU3DFE": 124, "Bosphorus": 30 + 30 + 5}  # + AU scans, 1 neutral each
    subjects = set(data.subjects)
    assert {"caldermends:CalD3r-F-001", "bu3dfe:F0001", "bosphorus:bs000"} <= subjects
    assert len(subjects) == 6 + 5 + 5
    assert "BU3DFE/Subjects/F0001/F0001_AN01WH_F2D.bmp" in data.ids  # [ERAI]'s re-packaged BU-3DFE
    assert counts(data)["neutral"] == 12 + 5 + 5
    own = merged.load(roots["merged"], {"bu3dfe_dir": "", "bosphorus_au_mapping": False, "bosphorus_neutral": "all"})
    assert Counter(s.split("/")[0] for s in own.ids) == {"CalD3RMenD3s": 48, "Bosphorus": 39}
    with pytest.raises(DataError, match="set dataset.bosphorus_dir"):
        merged.load(roots["merged"], {"bosphorus_dir": "Bosphorus3D"})


def test_loaders_find_a_nested_tree_and_explain_a_wrong_root(roots: dict[str, Path], tmp_path: Path) -> None:
    nested = caldermends.load(roots["merged"], {})  # the CalD3RMenD3s folder one level down
    assert len(nested) == 48 and nested.ids[0].startswith("CalD3RMenD3s/")
    with pytest.raises(DataError, match=r"no Bosphorus data found .* expected layout: <root>/bs000"):
        bosphorus.load(tmp_path, {})


# ----------------------------------------------------------------------------------------- protocols
@pytest.mark.parametrize("dataset", ["caldermends", "bu3dfe", "bosphorus", "merged-rgbd"])
def test_protocols_keep_each_subject_on_one_side(dataset: str, roots: dict[str, Path]) -> None:
    spec = SPEC[dataset]
    loader = {"caldermends": caldermends, "bu3dfe": bu3dfe, "bosphorus": bosphorus, "merged-rgbd": merged}[dataset]
    root = roots["merged" if dataset == "merged-rgbd" else dataset]
    for name, protocol in spec.protocols.items():
        if protocol.kind in ("subject_kfold", "repeated_subject_kfold") and protocol.folds > 6:
            continue  # the fixtures have 5-6 persons; the 10-fold variants are tested below
        data = loader.load(root, {})
        manifest = build_manifest(data, dataset, protocol)
        assert len(manifest.folds) == protocol.num_folds
        assert manifest.hash == build_manifest(loader.load(root, {}), dataset, protocol).hash
        for fold in manifest.folds:
            assert len(fold.train) and len(fold.test) and not set(fold.train) & set(fold.test)
            if protocol.kind == "subject_kfold" or protocol.kind == "repeated_split" and protocol.group_by_subject:
                assert not set(data.subjects[fold.train]) & set(data.subjects[fold.test]), name
        if protocol.kind == "kfold" or not protocol.group_by_subject:
            assert any(set(data.subjects[f.train]) & set(data.subjects[f.test]) for f in manifest.folds), name
        if protocol.kind in ("kfold", "subject_kfold"):
            tested = np.concatenate([f.test for f in manifest.folds])
            assert sorted(tested.tolist()) == list(range(len(data)))  # every sample tested exactly once


def test_bu3dfe_random_60_40_holds_out_40_percent_of_the_subjects(roots: dict[str, Path]) -> None:
    data = bu3dfe.load(roots["bu3dfe"], {})
    manifest = build_manifest(data, "bu3dfe", SPEC["bu3dfe"].protocols["random-60-40"])
    held_out = [frozenset(data.subjects[f.test]) for f in manifest.folds]
    assert len(held_out) == 5 and all(len(s) == 2 for s in held_out) and len(set(held_out)) > 1


def test_ten_fold_protocols_on_twelve_subjects(tmp_path: Path) -> None:
    subjects = [f"F{i:04d}" for i in range(1, 7)] + [f"M{i:04d}" for i in range(1, 7)]
    data = bu3dfe.load(make_bu3dfe(tmp_path / "bu", subjects, quirks=False),
                       {"classes": 6, "intensities": "top2", "subject_subset": 10})
    assert len(data) == 10 * 12 and len(set(data.subjects)) == 10
    manifest = build_manifest(data, "bu3dfe", SPEC["bu3dfe"].protocols["subject-10fold"])
    tested = [set(data.subjects[f.test]) for f in manifest.folds]
    assert len(tested) == 10 and all(len(s) == 1 for s in tested) and set().union(*tested) == set(data.subjects)
    assert SPEC["bosphorus"].protocols[SPEC["bosphorus"].default_protocol].kind == "subject_kfold"
    literature = SPEC["bu3dfe"].protocols["literature-60x10fold"]
    small = replace(literature, repeats=2, subject_subset=10)  # the fixture has 12 persons, not 100
    drawn = build_manifest(data, "bu3dfe", small)
    assert len(drawn.folds) == 20 and literature.num_folds == 1000
    for fold in drawn.folds:
        assert len(set(data.subjects[fold.test])) == 1
        assert not set(data.subjects[fold.train]) & set(data.subjects[fold.test])


# --------------------------------------------------------------------------------------------- pixels
def test_pixels_have_rgb_and_one_channel_depth_and_skip_unreadable_files(roots: dict[str, Path],
                                                                         fb_env: dict[str, str]) -> None:
    data = bosphorus.load(roots["bosphorus"], {})
    pixels = data.pixels(12)
    assert pixels.arrays["rgb"].shape == (len(data), 12, 12, 3) and pixels.arrays["depth"].shape[-1] == 1
    skipped = sorted(data.ids[pixels.unreadable])
    assert skipped == ["bs002/bs002_E_HAPPY_0.png", "bs003/bs003_E_SADNESS_0.png"]  # bad .bnt, bad .png
    gray = pixels.arrays["rgb"][list(data.ids).index("bs004/bs004_N_N_0.png")]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    depth = pixels.arrays["depth"][list(data.ids).index("bs000/bs000_N_N_0.png"), ..., 0]
    assert depth[6, 6] > depth[1, 6] > 0  # nearer (centre) brighter; the .bnt corners are background
    again = bosphorus.load(roots["bosphorus"], {}).pixels(12)
    assert np.array_equal(again.arrays["depth"], pixels.arrays["depth"])


# -------------------------------------------------------------------------------------------- the CLI
def test_data_check_counts_and_unreadable_files(roots: dict[str, Path], fb_env: dict[str, str]) -> None:
    result = ferbench("data", "check", "-d", "caldermends", "--data-root", str(roots["caldermends"]), "--json",
                      env=fb_env)
    report = json.loads(result.stdout)
    assert report["counts"] == {"all": {"neutral": 12, "happiness": 5, "surprise": 6, "sadness": 6, "anger": 7,
                                        "disgust": 6, "fear": 6}}
    assert report["reference_counts"]["all"]["neutral"] == 3422
    assert [Path(p).name for p in report["unreadable"]] == ["F_01_1_sadness_Color.png"] and not report["missing"]
    text = ferbench("data", "check", "-d", "bu3dfe", "--data-root", str(roots["bu3dfe"]), "--set",
                    "dataset.intensities=top2", env=fb_env).stdout
    assert "bu3dfe at" in text and "64 labelled samples" in text and "M0001_SU03AE_F2D.bmp" in text
    merged_text = ferbench("data", "check", "-d", "merged-rgbd", "--data-root", str(roots["merged"]),
                           env=fb_env).stdout
    assert "237 labelled samples" in merged_text and "unreadable images: 3" in merged_text


@pytest.mark.parametrize(("dataset", "args", "message"), [
    ("caldermends", [], "no CalD3r/MenD3s data found"),
    ("bosphorus", [], "no Bosphorus data found"),
    ("bu3dfe", ["--set", "dataset.intensities=all3"], "invalid value 'all3' for dataset.intensities"),
    ("merged-rgbd", [], "the caldermends part of merged-rgbd"),
])
def test_data_check_errors_are_one_line(dataset: str, args: list[str], message: str, tmp_path: Path,
                                        fb_env: dict[str, str]) -> None:
    result = ferbench("data", "check", "-d", dataset, "--data-root", str(tmp_path), *args, check=False, env=fb_env)
    assert_one_line_error(result, message)


def test_data_check_without_depth_maps_exits_2(tmp_path: Path, fb_env: dict[str, str]) -> None:
    rgb(tmp_path / "F0001" / "F0001_SU03WH_F2D.bmp", 3, fmt="BMP")
    result = ferbench("data", "check", "-d", "bu3dfe", "--data-root", str(tmp_path), check=False, env=fb_env)
    assert_one_line_error(result, "ferbench bu3dfe-depth")


@pytest.mark.parametrize(("dataset", "args", "folds"), [
    ("caldermends", [], 5),
    ("bu3dfe", [], 5),
    ("bosphorus", ["--protocol", "subject-5fold", "--set", "dataset.au_mapping=true"], 5),
    ("merged-rgbd", ["--set", "data.fold_statistics=true"], 1),
])
def test_end_to_end_run_records_one_result_per_fold(dataset: str, args: list[str], folds: int,
                                                     roots: dict[str, Path], fb_env: dict[str, str]) -> None:
    root = roots["merged" if dataset == "merged-rgbd" else dataset]
    result = ferbench("run", "-m", "vit-baseline", "-d", dataset, "--data-root", str(root), *TINY_RUN, *args, "--json",
                      env=fb_env)
    summary = json.loads(result.stdout)
    assert sorted(summary["folds"]) == [str(k) for k in range(folds)]
    assert all(0 <= fold["accuracy"] <= 1 for fold in summary["folds"].values())

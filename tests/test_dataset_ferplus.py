"""FERPlus plugin: vote rules of Microsoft's reader, both layouts of datasets.md §3, options, CLI, runs."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_RUN, assert_one_line_error, ferbench, ferbench_json
from ferbench.emotions import BASIC7, BASIC8
from ferbench.errors import DataError
from ferbench.plugins import registry
from ferbench.protocols import build_manifest
from ferbench.store import Store
from ferbench_plugins.ferplus import votes as rules
from ferbench_plugins.ferplus.dataset import load

N, H, SU, SA, AN, DI, FE, CO = BASIC8
#: vote pattern -> (votes, majority, plurality with first-index ties, plurality with ties dropped,
#: probability hard label), worked out by hand from Microsoft's src/ferplus.py (datasets.md §3.4).
PATTERNS = {
    "a": ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], None, N, N, N),  # 4 of 9 after outlier removal: no majority
    "b": ([0, 10, 0, 0, 0, 0, 0, 0, 0, 0], H, H, H, H),
    "c": ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], None, N, None, N),  # tie
    "d": ([6, 0, 0, 0, 0, 0, 0, 0, 4, 0], N, N, N, N),  # unknown votes count in the total
    "e": ([2, 0, 0, 0, 0, 0, 0, 0, 8, 0], None, None, None, None),  # unknown wins
    "f": ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], None, None, None, None),  # not a face
    "g": ([0, 0, 0, 0, 0, 0, 0, 7, 0, 3], CO, CO, CO, CO),
    "h": ([5, 1, 1, 1, 1, 1, 0, 0, 0, 0], N, N, N, N),  # single votes removed: 5 of 5
    "i": ([0, 0, 6, 0, 0, 0, 4, 0, 0, 0], SU, SU, SU, SU),
    "j": ([0, 4, 0, 0, 0, 0, 0, 0, 4, 2], None, H, None, None),  # happiness ties with unknown
    "k": ([0, 0, 0, 0, 2, 8, 0, 0, 0, 0], DI, DI, DI, DI),
    "l": ([0, 0, 0, 9, 0, 0, 0, 0, 1, 0], SA, SA, SA, SA),
    "m": ([3, 3, 3, 1, 0, 0, 0, 0, 0, 0], None, N, None, N),  # three-way tie: 3 classes allowed
    "n": ([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], None, N, None, None),  # five-way tie: > 3 classes, discarded
    "o": ([0, 0, 0, 0, 10, 0, 0, 0, 0, 0], AN, AN, AN, AN),
    "p": ([1, 0, 0, 0, 0, 0, 8, 0, 1, 0], FE, FE, FE, FE),
    "q": ([0, 3, 0, 0, 0, 0, 0, 4, 0, 3], None, CO, CO, CO),
    "r": ([6, 0, 0, 0, 0, 0, 0, 4, 0, 0], N, N, N, N),
}
MODES = {"majority": 1, "plurality": 2, "plurality_drop": 3, "probability": 4}
#: Soft targets of Microsoft's probability/crossentropy processing (class -> share).
SOFT = {"a": {N: 4 / 7, AN: 3 / 7}, "c": {N: 0.5, H: 0.5}, "d": {N: 1.0}, "h": {N: 1.0}, "i": {SU: 0.6, FE: 0.4},
        "m": {N: 1 / 3, H: 1 / 3, SU: 1 / 3}, "q": {H: 3 / 7, CO: 4 / 7}, "r": {N: 0.6, CO: 0.4}, "g": {CO: 1.0}}
PARTS = {"Training": "bdghiklopacefjmnqr", "PublicTest": "bioar", "PrivateTest": "bdklpcgo"}
FOLDER = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
NATIVE_VOTES = {"csv": "fer2013new.csv", "folders": "label.csv"}  # each layout's own vote file
BROKEN = ("PrivateTest", "o")  # a malformed pixel string (csv) / a garbage PNG (folders)
NO_BOX = ("PublicTest", "i")  # a label.csv row without the face-box field


def rows() -> list[tuple[str, str, str]]:
    """(Usage, image name, pattern) in fer2013 order: one unnamed NF row per part and a Training name
    listed twice (the second time with other votes)."""
    out = []
    for usage, patterns in PARTS.items():
        out += [(usage, "?", p) for p in patterns]
        out.insert(len(out) - 2, (usage, "", "f"))
    out.insert(10, ("Training", "dup", "o"))
    named = []
    for index, (usage, name, pattern) in enumerate(out):
        named.append((usage, "" if not name else (f"fer{index:07d}.png" if name == "?" else "fer0000000.png"),
                      pattern))
    return named


def expected(mode: str, usage_mode: dict[str, str] | None = None) -> dict[str, dict[str, int]]:
    """Counts per split/class: every named, first-listed row labelled by its split's rule."""
    out: dict[str, Counter] = {}
    seen = set()
    for usage, name, pattern in rows():
        if not name or name in seen:
            continue
        seen.add(name)
        label = PATTERNS[pattern][MODES[(usage_mode or {}).get(usage, mode)]]
        if label is not None:
            out.setdefault(SPLIT[usage], Counter())[label] += 1
    return {split: {c: out.get(split, Counter())[c] for c in BASIC8} for split in ("train", "val", "test")}


def pixels_of(index: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 256, (48, 48), dtype=np.uint8)


def crlf_no_final_newline(lines: list[str]) -> bytes:
    return "\r\n".join(lines).encode()


def write_csv_layout(root: Path, kaggle_folder: bool = False) -> Path:
    """fer2013.csv (in fer2013/ like Kaggle's archive when asked) + fer2013new.csv, CRLF, no final newline."""
    fer_lines, new_lines = ["emotion,pixels,Usage"], ["Usage,Image name," + ",".join(rules_columns())]
    for index, (usage, name, pattern) in enumerate(rows()):
        values = pixels_of(index).ravel().tolist()
        if (usage, pattern) == BROKEN:
            values = values[:100]
        fer_lines.append(f"0,{' '.join(map(str, values))},{usage}")
        new_lines.append(f"{usage},{name}," + ",".join(map(str, PATTERNS[pattern][0])))
    fer_dir = root / "fer2013" if kaggle_folder else root
    fer_dir.mkdir(parents=True, exist_ok=True)
    (fer_dir / "fer2013.csv").write_bytes(crlf_no_final_newline(fer_lines))
    (root / "fer2013new.csv").write_bytes(crlf_no_final_newline(new_lines))
    return root


def rules_columns() -> list[str]:
    return ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]


def write_folders_layout(root: Path) -> Path:
    """generate_training_data.py output: grayscale PNGs + header-less label.csv (csv.writer: CRLF)."""
    written = set()
    for usage, folder in FOLDER.items():
        (root / folder).mkdir(parents=True)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for index, (row_usage, name, pattern) in enumerate(rows()):
            if row_usage != usage or not name:
                continue
            box = [] if (usage, pattern) == NO_BOX else ["(0, 0, 48, 48)"]
            writer.writerow([name, *box, *PATTERNS[pattern][0]])
            path = root / folder / name
            if (usage, pattern) == BROKEN:
                path.write_bytes(b"\x89PNG garbage")
            elif name not in written:
                Image.fromarray(pixels_of(index), mode="L").save(path)
            written.add(name)
        text = buffer.getvalue()
        (root / folder / "label.csv").write_text(text[:-2] if usage == "PublicTest" else text, newline="")
    return root


def counts(data) -> dict[str, dict[str, int]]:
    return {split: {c: int(((data.split == split) & (data.labels == data.classes.index(c))).sum())
                    for c in BASIC8 if c in data.classes} for split in ("train", "val", "test")}


@pytest.mark.parametrize("mode", MODES)
def test_vote_rules_follow_microsoft_reader(mode: str) -> None:
    votes = np.array([p[0] for p in PATTERNS.values()])
    want = [-1 if p[MODES[mode]] is None else BASIC8.index(p[MODES[mode]]) for p in PATTERNS.values()]
    if mode == "probability":
        targets, labels = rules.probability(votes)
        for key, row in zip(PATTERNS, targets):
            share = SOFT.get(key)
            if share is not None:
                assert row == pytest.approx([share.get(c, 0.0) for c in BASIC8]), key
        assert np.allclose(targets[labels >= 0].sum(1), 1) and not targets[labels < 0].any()
    elif mode == "plurality_drop":
        labels = rules.plurality(votes, "drop")
    else:
        labels = rules.labels_for(mode, votes)[0]
    assert labels.tolist() == want


@pytest.mark.parametrize("layout", ["csv", "folders"])
def test_layouts_parse_to_the_official_split(tmp_path: Path, layout: str, capsys) -> None:
    root = write_csv_layout(tmp_path) if layout == "csv" else write_folders_layout(tmp_path)
    data = load(root, {"votes": NATIVE_VOTES[layout]})
    assert tuple(data.classes) == BASIC8 and data.soft_labels is None
    assert counts(data) == expected("majority")
    assert data.ids[0] == "FER2013Train/fer0000000.png"
    first = list(data.ids).index("FER2013Train/fer0000000.png")
    assert BASIC8[data.labels[first]] == H  # the duplicate's anger votes are ignored
    err = capsys.readouterr().err
    assert "1 duplicated name(s)" in err
    unnamed = 3 if layout == "csv" else 0
    assert f"({layout} layout, votes of {NATIVE_VOTES[layout]}, majority labels, 8 classes): kept 21 of" in err
    assert f"dropped {unnamed} without an image name" in err
    if layout == "folders":
        assert all(Path(f).is_file() for f in data.files)
    else:
        assert data.files is None and "1 pixel string(s)" in err


def test_both_layouts_give_the_same_pixels_and_manifest(tmp_path: Path, fb_env: dict[str, str]) -> None:
    from_csv = load(write_csv_layout(tmp_path / "csv", kaggle_folder=True), {"votes": "fer2013new.csv"})
    write_folders_layout(tmp_path / "png" / "data")
    from_png = load(tmp_path / "png", {})  # a clone of the FERPlus repository keeps the folders in data/
    assert list(from_csv.ids) == list(from_png.ids)
    a, b = from_csv.pixels(48), from_png.pixels(48)
    broken = list(from_csv.ids).index(f"FER2013Test/{[n for u, n, p in rows() if (u, p) == BROKEN][0]}")
    assert a.unreadable.tolist() == b.unreadable.tolist() == [broken]
    readable = np.ones(len(from_csv), dtype=bool)
    readable[broken] = False
    assert np.array_equal(np.asarray(a.arrays["rgb"])[readable], np.asarray(b.arrays["rgb"])[readable])
    row = list(from_csv.ids).index("FER2013Train/fer0000002.png")
    assert np.array_equal(np.asarray(a.arrays["rgb"])[row, ..., 1], pixels_of(2))
    spec = registry().dataset("ferplus").protocols["official"]
    manifest = build_manifest(from_csv, "ferplus", spec)
    assert manifest.hash == build_manifest(from_png, "ferplus", spec).hash
    (fold,) = manifest.folds
    assert (len(fold.train), len(fold.val), len(fold.test)) == (10, 4, 6) and broken not in fold.test
    again = load(tmp_path / "csv", {"votes": "fer2013new.csv"})
    again.pixels(48)  # cached: the pixel strings are not needed again
    assert build_manifest(again, "ferplus", spec).hash == manifest.hash
    small = from_csv.pixels(24)  # a new size after the strings were released: fer2013.csv is read again
    assert small.arrays["rgb"].shape == (len(from_csv), 24, 24, 3) and small.unreadable.tolist() == [broken]
    assert np.asarray(small.arrays["rgb"])[row].std() > 0


def test_label_mode_options(tmp_path: Path) -> None:
    root = write_folders_layout(tmp_path)
    assert counts(load(root, {"label_mode": "plurality"})) == expected("plurality")
    assert counts(load(root, {"label_mode": "plurality", "plurality_ties": "drop"})) == expected("plurality_drop")
    prob = load(root, {"label_mode": "probability"})  # eval parts scored with the majority rule (auto)
    assert counts(prob) == expected("probability", {"PublicTest": "majority", "PrivateTest": "majority"})
    assert prob.soft_labels.shape == (len(prob), 8) and np.allclose(prob.soft_labels.sum(1), 1)
    assert (prob.soft_labels.argmax(1) == prob.labels).all()
    row = list(prob.ids).index(f"FER2013Train/{[n for u, n, p in rows() if (u, p) == ('Training', 'a')][0]}")
    assert prob.soft_labels[row] == pytest.approx([4 / 7, 0, 0, 0, 3 / 7, 0, 0, 0])
    same = load(root, {"label_mode": "probability", "eval_label_mode": "probability"})
    assert counts(same) == expected("probability")
    strict_test = load(root, {"label_mode": "plurality", "eval_label_mode": "majority"})
    assert counts(strict_test) == expected("plurality", {"PublicTest": "majority", "PrivateTest": "majority"})


def test_seven_classes_and_train_on_valid(tmp_path: Path) -> None:
    root = write_folders_layout(tmp_path)
    seven = load(root, {"classes": 7, "label_mode": "probability"})
    assert tuple(seven.classes) == BASIC7 and seven.soft_labels.shape == (len(seven), 7)
    want = expected("probability", {"PublicTest": "majority", "PrivateTest": "majority"})
    assert counts(seven) == {split: {k: v for k, v in c.items() if k != CO} for split, c in want.items()}
    r_row = list(seven.ids).index(f"FER2013Train/{[n for u, n, p in rows() if (u, p) == ('Training', 'r')][0]}")
    assert seven.soft_labels[r_row] == pytest.approx([1, 0, 0, 0, 0, 0, 0])  # contempt share removed
    merged = load(root, {"train_on_valid": True})
    assert set(merged.split) == {"train", "test"}
    base = load(root, {})
    assert list(merged.ids) == list(base.ids)
    assert ((merged.split == "train") == np.isin(base.split, ["train", "val"])).all()
    fold = build_manifest(merged, "ferplus", registry().dataset("ferplus").protocols["official"]).folds[0]
    assert (len(fold.train), len(fold.val)) == (14, 0)


def test_bad_data_gives_one_clear_data_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no FERPlus layout found .*folders \(.*FER2013Train/label.csv.*csv \("):
        load(tmp_path / "empty", {})
    only_labels = tmp_path / "only_labels"
    only_labels.mkdir()
    (only_labels / "fer2013new.csv").write_text("Usage,Image name," + ",".join(rules_columns()) + "\n"
                                                "Training,fer0000000.png,0,10,0,0,0,0,0,0,0,0\n")
    with pytest.raises(DataError, match="missing fer2013.csv"):
        load(only_labels, {})
    short = write_csv_layout(tmp_path / "short")
    text = (short / "fer2013.csv").read_bytes()
    (short / "fer2013.csv").write_bytes(text[:text.rindex(b"\r\n")])
    with pytest.raises(DataError, match=f"has {len(rows()) - 1} rows but .* has {len(rows())}"):
        load(short, {})
    shuffled = write_csv_layout(tmp_path / "shuffled")
    text = (shuffled / "fer2013.csv").read_text().replace(",PublicTest", ",Training", 1)
    (shuffled / "fer2013.csv").write_text(text)
    with pytest.raises(DataError, match=r"row \d+: Usage 'PublicTest' in .* but 'Training'"):
        load(shuffled, {})
    bad = write_folders_layout(tmp_path / "bad")
    with open(bad / "FER2013Test" / "label.csv", "a") as handle:
        handle.write("fer9999999.png,\"(0, 0, 48, 48)\",1,2,x,0,0,0,0,0,0,0\r\n")
    with pytest.raises(DataError, match=r"FER2013Test/label.csv line 9: vote counts must be numbers"):
        load(bad, {})
    with pytest.raises(DataError, match="looked for: csv"):
        load(bad, {"layout": "csv"})


def test_data_check_cli(tmp_path: Path, fb_env: dict[str, str]) -> None:
    root = write_folders_layout(tmp_path / "ferplus")
    report = ferbench_json("data", "check", "-d", "ferplus", "--data-root", str(root), env=fb_env)
    assert report["counts"] == expected("majority") and report["reference_counts"]["test"]["contempt"] == 15
    broken = [n for u, n, p in rows() if (u, p) == BROKEN][0]
    assert report["unreadable"] == [str(root / "FER2013Test" / broken)] and report["missing"] == []
    text = ferbench("data", "check", "-d", "ferplus", "--data-root", str(root), "--set", "dataset.classes=7",
                    env=fb_env)
    assert text.returncode == 0 and "unreadable images: 1 (skipped in runs)" in text.stdout
    assert any(line.split()[:4] == ["train", "contempt", "0", "120"] for line in text.stdout.splitlines())
    seven = ferbench_json("data", "check", "-d", "ferplus", "--data-root", str(root), "--set", "dataset.classes=7",
                          env=fb_env)
    assert list(seven["counts"]["train"]) == list(BASIC7)
    from_csv = ferbench("data", "check", "-d", "ferplus", "--data-root", str(write_csv_layout(tmp_path / "csv")),
                        "--set", "dataset.votes=fer2013new.csv", "--json", env=fb_env)
    assert json.loads(from_csv.stdout)["counts"] == expected("majority")
    assert "1 pixel string(s)" in from_csv.stderr and "dropped 3 without an image name, 1 duplicated" in from_csv.stderr
    (root / "FER2013Valid" / "label.csv").unlink()
    failed = ferbench("data", "check", "-d", "ferplus", "--data-root", str(root), env=fb_env, check=False)
    assert assert_one_line_error(failed, "FER2013Valid/label.csv").startswith("ferbench: error: missing")


@pytest.mark.parametrize("layout", ["folders", "csv"])
def test_end_to_end_run(tmp_path: Path, fb_env: dict[str, str], layout: str) -> None:
    root = write_folders_layout(tmp_path / "fp") if layout == "folders" else write_csv_layout(tmp_path / "fp")
    extra = [] if layout == "folders" else ["--set", "dataset.label_mode=probability", "--set", "loss.soft_targets=true",
                                            "--set", "dataset.votes=fer2013new.csv"]
    summary = ferbench_json("run", "-m", "vit-baseline", "-d", "ferplus", "--data-root", str(root), *TINY_RUN,
                            *extra, env=fb_env)
    assert list(summary["folds"]) == ["0"] and 0 <= summary["folds"]["0"]["accuracy"] <= 1
    store = Store(fb_env["FERBENCH_DB"])
    (run,) = store.query("SELECT status, classes, config FROM runs")
    assert run["status"] == "completed" and list(run["classes"]) == list(BASIC8)
    assert run["config"]["dataset"]["votes"] == NATIVE_VOTES[layout]  # the vote source is recorded
    train = sum(expected("probability" if extra else "majority")["train"].values())
    (fold,) = store.query("SELECT n_train, n_val, n_test FROM folds")
    assert fold == {"n_train": train, "n_val": 4, "n_test": 6}


def name_of(usage: str, pattern: str) -> str:
    return next(n for u, n, p in rows() if (u, p) == (usage, pattern))


def test_vote_sources_differ_and_each_has_its_own_counts(tmp_path: Path, fb_env: dict[str, str]) -> None:
    """A clone of Microsoft's repository (fer2013new.csv beside data/FER2013*/) plus fer2013.csv, where
    one test image has other votes in label.csv (anger) than in fer2013new.csv (happiness)."""
    root = write_csv_layout(tmp_path / "clone")
    write_folders_layout(root / "data")
    label_file = root / "data" / "FER2013Test" / "label.csv"
    happy = ",".join(map(str, PATTERNS["b"][0]))
    line = next(x for x in label_file.read_text().splitlines() if x.startswith(name_of("PrivateTest", "b")))
    label_file.write_text(label_file.read_text().replace(line, line.replace(happy, ",".join(map(str, PATTERNS["o"][0])))),
                          newline="")
    want = {"fer2013new.csv": expected("majority"), "label.csv": expected("majority")}
    want["label.csv"]["test"] = {**want["label.csv"]["test"], H: want["label.csv"]["test"][H] - 1,
                                 AN: want["label.csv"]["test"][AN] + 1}
    for layout in ("folders", "csv"):  # either vote file with either image source
        for votes, counted in want.items():
            data = load(root, {"layout": layout, "votes": votes})
            assert counts(data) == counted, (layout, votes)
    spec = registry().dataset("ferplus")
    default, counted = spec.reference_for({})
    assert default == "votes=label.csv" and sum(counted["test"].values()) == 3137  # datasets.md §3.5
    which, reference = spec.reference_for({"votes": "fer2013new.csv"})
    assert which == "votes=fer2013new.csv" and sum(reference["test"].values()) == 3153
    assert [sum(reference[part].values()) for part in ("train", "val")] == [25057, 3199]
    report = ferbench_json("data", "check", "-d", "ferplus", "--data-root", str(root), "--set",
                           "dataset.votes=fer2013new.csv", env=fb_env)
    assert report["reference_for"] == "votes=fer2013new.csv" and report["reference_counts"] == reference
    assert report["counts"] == want["fer2013new.csv"]
    only_csv = write_csv_layout(tmp_path / "kaggle")
    failed = ferbench("data", "check", "-d", "ferplus", "--data-root", str(only_csv), env=fb_env, check=False)
    assert_one_line_error(failed, "dataset.votes=label.csv needs", "dataset.votes=fer2013new.csv")

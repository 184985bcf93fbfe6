"""Tests of the static HTML leaderboard, on a small database with hand-checkable predictions.

Run this file directly (``python tests/test_leaderboard.py [out_dir]``) to render the example site to
``/tmp/lb_example`` for a look in a browser.
"""
from __future__ import annotations

import re
import statistics
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import (CLASSES, DATASET, EPOCHS, LABELS, PREDICTIONS, PROTOCOL, build_example, foreign_scripts,
                      insert_run as _insert_run, save_fold as _save_fold)

from ferbench.boards import Entry, RunView, safe_name
from ferbench.errors import FerbenchError
from ferbench.leaderboard import render_leaderboard
from ferbench.paper_results import PaperResult, PaperSetting, Reproduction
from ferbench.store import Store

# --- hand computations (deliberately not using ferbench.metrics) -----------------------------------

def _accuracy(labels: list[int], predictions: list[int]) -> float:
    return sum(y == p for y, p in zip(labels, predictions)) / len(labels)


def _recall(labels: list[int], predictions: list[int], cls: int) -> float:
    hits = [p == cls for y, p in zip(labels, predictions) if y == cls]
    return sum(hits) / len(hits)


def _mean_class_accuracy(labels: list[int], predictions: list[int]) -> float:
    return statistics.mean(_recall(labels, predictions, c) for c in range(len(CLASSES)))


def _pm(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def _entry_values(method: str, score) -> list[float]:
    return [score(LABELS[f], PREDICTIONS[(method, s)][f]) for s in (0, 1) for f in (0, 1)]


def _seed_means(method: str, score) -> list[float]:
    """Each seed's fold-averaged score."""
    return [statistics.mean(score(LABELS[f], PREDICTIONS[(method, s)][f]) for f in (0, 1)) for s in (0, 1)]


def _fold_std(method: str, score) -> float:
    """The seeds' mean std over folds."""
    return statistics.mean(statistics.stdev(score(LABELS[f], PREDICTIONS[(method, s)][f]) for f in (0, 1))
                           for s in (0, 1))


def paper_row(method: str, value: float, classes: int = 3, dataset: str = DATASET, protocol: str = PROTOCOL,
              **config: object) -> PaperResult:
    """A published row reproduced by ``method``'s ``paper`` preset; ``config`` as dotted keys with ``__`` for
    ``.`` (``train__selection="val"``), ``dataset__*`` keys being the setting's dataset options."""
    switches = {key.replace("__", "."): v for key, v in config.items()}
    options = {key.split(".", 1)[1]: v for key, v in switches.items() if key.startswith("dataset.")}
    return PaperResult(name=method, dataset=dataset, protocol=protocol,
                       setting=PaperSetting(classes, "train", "best epoch on test", name=f"{dataset}-{classes}"),
                       metric="accuracy", value=value, source="A paper", table="Table 1", options=options,
                       reproduce=Reproduction(method, "paper", {k: v for k, v in switches.items()
                                                                if not k.startswith("dataset.")}))


# --- HTML inspection -------------------------------------------------------------------------------

class _Page(HTMLParser):
    """Collects link targets, element ids and the text of every table cell (tables keyed by id)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.tags: Counter[str] = Counter()
        self.tables: dict[str, list[list[str]]] = {}
        self.row_classes: dict[str, list[str]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags[tag] += 1
        self.links += [value for name, value in attrs if name in ("href", "src") and value is not None]
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "table":
            self._table = attributes.get("id") or f"table{len(self.tables)}"
            self.tables[self._table], self.row_classes[self._table] = [], []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
            self.row_classes[self._table].append(attributes.get("class") or "")
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _body_rows(page: _Page, table: str) -> list[list[str]]:
    """Rows of a table with a header row first, the header dropped."""
    return page.tables[table][1:]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lb")
    index = render_leaderboard(build_example(root / "results.duckdb"), root / "site",
                               paper_results=[paper_row("alpha_net", 90.0, train__selection="val"),
                                              paper_row("beta_net", 50.0, classes=7)])
    assert index == root / "site" / "index.html"
    return root / "site"


def _dataset_page(site: Path) -> Path:
    (page,) = site.glob(f"{DATASET}--{PROTOCOL}--*.html")
    return page


def test_index_lists_methods_and_dataset(site: Path) -> None:
    page = _parse(site / "index.html")
    header, row = page.tables["matrix"][0], page.tables["matrix"][1]
    assert [name.split()[0] for name in header[1:3]] == ["alpha_net", "beta_net"]
    assert row[0] == f"{DATASET} / {PROTOCOL}"
    best_alpha = statistics.mean(_seed_means("alpha_net", _accuracy))
    assert row[1].startswith(f"{100 * best_alpha:.2f}")
    assert "2/3 runs" in row[1] and "2/3 runs" in row[2]  # completed / all, per method
    assert row[3] == "4/6"
    assert "test" in row[2] and "test" not in row[1]  # beta's best entry is test-selected
    assert _dataset_page(site).name in page.links


def test_dataset_page_ranks_entries_with_hand_computed_scores(site: Path) -> None:
    page = _parse(_dataset_page(site))
    header = page.tables["ranking"][0]
    rows = _body_rows(page, "ranking")
    assert [row[1].split()[0] for row in rows] == ["alpha_net", "beta_net"]
    col = {name: header.index(name) for name in ("accuracy", "mean class acc.", "paper", "Δ", "seeds", "folds")}
    for row, method in zip(rows, ("alpha_net", "beta_net")):
        for name, score in (("accuracy", _accuracy), ("mean class acc.", _mean_class_accuracy)):
            # mean and std over seeds of the fold averages; beneath, the seeds' mean std over folds and the
            # bootstrap interval, which holds the mean
            mean_std_text = f"{_pm(_seed_means(method, score))} sd over 2 seeds; folds ± {100 * _fold_std(method, score):.2f}"
            low, high = map(float, re.fullmatch(re.escape(mean_std_text) + r" 95% CI \[([\d.]+), ([\d.]+)\]",
                                                row[col[name]]).groups())
            assert low <= 100 * statistics.mean(_seed_means(method, score)) <= high
        assert (row[col["seeds"]], row[col["folds"]]) == ("2", "2")
    alpha_mean = 100 * statistics.mean(_seed_means("alpha_net", _accuracy))
    assert rows[0][col["paper"]] == "90.00 accuracy, Table 1" and rows[0][col["Δ"]] == f"{alpha_mean - 90:+.2f}"
    assert rows[1][col["paper"]] == "—"  # the 7-class beta_net row is listed below, not shown
    published = {row[0]: row[-1] for row in _body_rows(page, "papers")}
    assert "reproduced" in _body_rows(page, "papers")[0][5]  # 90 lies in alpha_net's interval
    assert published == {"alpha_net": "yes", "beta_net": "no: 3 classes here, 7 in the paper"}
    assert "std over seeds" in _dataset_page(site).read_text(encoding="utf-8")


def test_test_selected_entries_and_runs_are_flagged(site: Path) -> None:
    page = _parse(_dataset_page(site))
    rows = _body_rows(page, "ranking")
    assert "selected on test" in rows[1][1] and "selected on test" not in rows[0][1]
    assert page.row_classes["ranking"][1:] == ["", "flagged"]
    assert "selected on test" in (site / "runs" / "beta_net-s0.html").read_text(encoding="utf-8")
    assert "selected on test" not in (site / "runs" / "alpha_net-s0.html").read_text(encoding="utf-8")


def test_unfinished_runs_are_listed_separately(site: Path) -> None:
    page = _parse(_dataset_page(site))
    unfinished = {row[0]: row[1] for row in page.tables["unfinished-runs"][1:]}
    assert unfinished == {"beta_net-s2": "failed", "alpha_net-s3": "running"}
    assert all("s2" not in row[-1] for row in _body_rows(page, "ranking"))
    assert "CUDA out of memory" in (site / "runs" / "beta_net-s2.html").read_text(encoding="utf-8")


def test_run_page_class_tables_match_hand_counts(site: Path) -> None:
    page = _parse(site / "runs" / "alpha_net-s1.html")
    per_fold = PREDICTIONS[("alpha_net", 1)]
    labels = LABELS[0] + LABELS[1]
    predictions = per_fold[0] + per_fold[1]
    recall = {row[0]: row for row in _body_rows(page, "recall")}
    assert list(recall) == CLASSES
    for c, name in enumerate(CLASSES):
        fold_recalls = [_recall(LABELS[f], per_fold[f], c) for f in (0, 1)]
        assert recall[name][1] == str(labels.count(c))
        assert recall[name][2] == f"{100 * _recall(labels, predictions, c):.2f}"
        assert recall[name][3] == _pm(fold_recalls)
        assert recall[name][4:] == [f"{100 * r:.2f}" for r in fold_recalls]
    counts = Counter(zip(labels, predictions))
    confusion = page.tables["confusion"]
    assert confusion[0] == ["", "", "predicted"] and confusion[1][2:] == CLASSES
    assert confusion[2][0] == "true"
    for c, row in enumerate(confusion[2:]):
        cells = row[-len(CLASSES):]
        assert row[-len(CLASSES) - 1] == CLASSES[c]
        support = labels.count(c)
        assert cells == [f"{counts[(c, p)]} {100 * counts[(c, p)] / support:.2f}%" for p in range(len(CLASSES))]


def test_run_page_provenance_metrics_and_curves(site: Path) -> None:
    text = (site / "runs" / "alpha_net-s0.html").read_text(encoding="utf-8")
    page = _parse(site / "runs" / "alpha_net-s0.html")
    for value in ("abc1234", "testhost", "cfg-alpha_net-val", "man-toyfer", "stratified 10% of train",
                  "ferbench run alpha_net toyfer --seed 0", "2024-05-01 12:00:00", "2024-05-01 12:03:00"):
        assert value in text
    folds = page.tables["folds"]
    assert folds[0][:2] == ["fold", "epoch"] and [row[1] for row in folds[1:3]] == [str(EPOCHS - 1)] * 2
    accuracies = [_accuracy(LABELS[f], PREDICTIONS[("alpha_net", 0)][f]) for f in (0, 1)]
    assert folds[-1][folds[0].index("accuracy %") - 5] == _pm(accuracies)  # tfoot: label spans 6 columns
    assert page.tags["svg"] == 3 and page.tags["polyline"] == 6  # 3 curves x 2 folds
    assert page.tags["circle"] == 6  # the selected epoch of each fold, on each curve
    assert dict(row for row in page.tables["config"])["train.lr"] == "0.001"


def test_links_resolve_and_no_external_resources(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    # index, published rows, data, one board, a page and a sample browser per run
    assert len(pages) == 3 + 1 + 6 + 6
    parsed = {path: _parse(path) for path in pages}
    for path, page in parsed.items():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and not foreign_scripts(text)
        assert page.links
        for link in page.links:
            url = urlparse(link)
            assert not url.scheme and not url.netloc, link
            target = (path.parent / unquote(url.path)).resolve() if url.path else path
            assert target.is_file(), f"{path.name}: {link}"
            assert site.resolve() in target.parents
            if url.fragment:
                assert url.fragment in parsed[target].ids, f"{path.name}: {link}"
    css = (site / "style.css").read_text(encoding="utf-8")
    assert "font-family" in css and not re.search(r"url\(|@import|https?:", css)
    script = (site / "ferbench.js").read_text(encoding="utf-8")
    assert not re.search(r"https?:|fetch\(|XMLHttpRequest|import\(|innerHTML|eval\(", script)


def test_hostile_names_are_escaped_and_sanitised(tmp_path: Path) -> None:
    store = Store(tmp_path / "evil.duckdb")
    evil = '<script>alert("x")</script>'
    run_id = "../../etc/passwd <script>"
    _insert_run(store, run_id, evil, 0, "running", "final", dataset="Evil/../Set", protocol="a--b",
                classes=["<b>x</b>", "y"], config_extra={"model": {"name": evil}})
    _save_fold(store, run_id, 0, [0, 1, 1], [0, 1, 0], 2, "final")
    store.update_run(run_id, status="completed")
    out = tmp_path / "site"
    render_leaderboard(store, out)
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 3 + 3 and all(out in p.parents for p in pages)
    for path in pages:
        text = path.read_text(encoding="utf-8")
        assert not foreign_scripts(text) and "<b>x</b>" not in text
        for link in _parse(path).links:
            assert (path.parent / urlparse(link).path).resolve().is_file()
    run_page = next(p for p in pages if p.parent.name == "runs")
    assert "&lt;script&gt;" in (out / "samples" / run_page.name).read_text(encoding="utf-8")
    text = run_page.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert "&lt;script&gt;" in (out / "index.html").read_text(encoding="utf-8")


def test_entry_flags_partial_folds_and_repeated_seeds() -> None:
    def run(seed: int, folds: list[int]) -> RunView:
        return RunView({"run_id": f"r{seed}{folds}", "seed": seed, "manifest_hash": "m1", "selection_rule": "val",
                        "selected_on_test": False}, metrics={f: {"accuracy": 0.5 + f / 10} for f in folds})

    clean = Entry("m", "p", "c", [run(0, [0, 1]), run(1, [0, 1])], expected_folds=2)
    assert clean.flags == [] and (clean.stats["accuracy"]["seeds"], clean.stats["accuracy"]["folds"]) == (2, 2)
    flagged = Entry("m", "p", "c", [run(0, [0, 1]), run(0, [0])], expected_folds=2)
    texts = " | ".join(text for _, text in flagged.flags)
    assert "partial folds" in texts and "2 runs for 1 seeds" in texts
    assert all(kind == "note" for kind, _ in flagged.flags)


def test_a_run_predicting_one_class_for_every_test_sample_is_flagged(tmp_path: Path) -> None:
    """An untrained or collapsed model can still score (here 40% accuracy, the majority share): it is marked."""
    store = Store(tmp_path / "r.duckdb")
    store.save_manifest(f"man-{DATASET}", DATASET, PROTOCOL, {"folds": [{"test": []}]})
    for run_id, predictions in (("collapsed", [0] * 10), ("learned", PREDICTIONS[("alpha_net", 0)][0])):
        _insert_run(store, run_id, run_id, 0, "running", "final")
        _save_fold(store, run_id, 0, LABELS[0], predictions, len(CLASSES), "final")
        store.update_run(run_id, status="completed")
    site = render_leaderboard(store, tmp_path / "site").parent
    rows = {row[1].split()[0]: row[1] for row in _body_rows(_parse(_dataset_page(site)), "ranking")}
    assert "predicts one class for every test sample" in rows["collapsed"]
    assert "predicts one class" not in rows["learned"]
    assert "predicts one class for every test sample of fold(s) 0" in (site / "runs" / "collapsed.html").read_text()
    assert "predicts one class" not in (site / "runs" / "learned.html").read_text()


def test_safe_name() -> None:
    assert safe_name("rafdb") == "rafdb" and safe_name("20240501-120000-ab12cd") == "20240501-120000-ab12cd"
    names = ["a/b", "a_b", "A_B", "a--b", "../x", "", ".hidden", "con:x", "ü" * 200]
    slugs = [safe_name(n) for n in names]
    assert len(set(slugs)) == len(names)
    for slug in slugs:
        assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", slug) and "--" not in slug and len(slug) <= 80, slug


def test_empty_database_renders_an_empty_index_and_a_missing_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FerbenchError, match="no results database at .*none.duckdb"):
        render_leaderboard(Store(tmp_path / "none.duckdb"), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    store = Store(tmp_path / "empty.duckdb")
    with store.connect():
        pass  # creates the tables, no rows
    index = render_leaderboard(store, tmp_path / "b")
    assert "No runs recorded" in index.read_text(encoding="utf-8")
    assert sorted(p.name for p in index.parent.rglob("*.html")) == ["data.html", "index.html", "published.html"]


FERPLUS = {"classes": 8, "train_on_valid": False, "label_mode": "majority", "votes": "label.csv"}
BASIC8 = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]


def _paper_preset(method: str) -> dict:
    """The ``model``/``data``/``optim`` sections of an installed method's ``paper`` preset (none otherwise)."""
    from ferbench.config import method_tree
    from ferbench.plugins import registry

    spec = registry().methods.get(method)
    tree = method_tree(spec.defaults, spec.presets["paper"]) if spec else {}
    return {key: tree[key] for key in ("model", "data", "optim") if key in tree}


def _completed(store: Store, run_id: str, method: str, seed: int, dataset: str, classes: list[str], manifest: str,
               options: dict, selection: str = "final") -> None:
    _insert_run(store, run_id, method, seed, "running", selection, dataset=dataset, protocol="official",
                classes=classes, config_extra={**_paper_preset(method), "dataset": options}, manifest=manifest)
    _save_fold(store, run_id, 0, LABELS[0], PREDICTIONS[("alpha_net", seed)][0], len(classes), selection)
    store.update_run(run_id, status="completed")


def _index_rows(site: Path) -> dict[str, str]:
    """Board cell text -> the page it links to."""
    page = _parse(site / "index.html")
    links = [link for link in page.links if link.endswith(".html") and "--" in link]
    return dict(zip([row[0] for row in page.tables["matrix"][1:]], links))


def test_boards_split_by_test_set_and_are_titled_by_what_differs(tmp_path: Path) -> None:
    """FERPlus with 8 and 7 classes and with train + valid, and synthfer with two class lists: five test
    sets, five boards, each named by what sets it apart from the other boards of its dataset."""
    from ferbench.paper_results import load_paper_results

    store = Store(tmp_path / "r.duckdb")
    _completed(store, "fp8-s0", "vit-baseline", 0, "ferplus", BASIC8, "m-fp8", FERPLUS)
    _completed(store, "fp8-s1", "vit-baseline", 1, "ferplus", BASIC8, "m-fp8", FERPLUS)
    _completed(store, "fp7", "vit-baseline", 0, "ferplus", BASIC8[:7], "m-fp7", {**FERPLUS, "classes": 7})
    _completed(store, "fp8tv", "vit-baseline", 0, "ferplus", BASIC8, "m-fp8tv", {**FERPLUS, "train_on_valid": True})
    _completed(store, "s7", "vit-baseline", 0, "synthfer", BASIC8[:7], "m-s7", {"samples": 400})
    _completed(store, "s6", "vit-baseline", 0, "synthfer", BASIC8[:2] + BASIC8[3:7], "m-s6", {"samples": 400})
    site = tmp_path / "site"
    render_leaderboard(store, site, load_paper_results())
    boards = _index_rows(site)
    assert set(boards) == {"ferplus / official 8 classes, train only",
                           "ferplus / official 7 classes without contempt, train only",
                           "ferplus / official 8 classes, train + valid", "synthfer / official 7 classes",
                           "synthfer / official 6 classes without surprise"}
    assert len(set(boards.values())) == 5 == len(list(site.glob("*--*.html")))
    two_seeds = _parse(site / boards["ferplus / official 8 classes, train only"])
    assert [row[3] for row in _body_rows(two_seeds, "ranking")] == ["2"]  # both seeds on one board
    header = two_seeds.tables["ranking"][0]
    assert _body_rows(two_seeds, "ranking")[0][header.index("paper")] == "—"  # MIMIC's rows are held, not its own
    published = _body_rows(two_seeds, "papers")
    pfvit = [row for row in published if row[-2].startswith("PF-ViT") and row[1] == "vit-baseline / paper"]
    assert pfvit and {row[-1] for row in pfvit} == {"no: dataset.train_on_valid=false here, true in the paper"}
    assert {row[-1] for row in published if row[-2].startswith("MIMIC")} == {"yes"}  # it does not say
    seven = _body_rows(_parse(site / boards["ferplus / official 7 classes without contempt, train only"]), "papers")
    assert {row[-1] for row in seven} == {"no: 7 classes here, 8 in the paper"}
    matching = _parse(site / boards["ferplus / official 8 classes, train + valid"])
    header, (row,) = matching.tables["ranking"][0], _body_rows(matching, "ranking")
    assert row[header.index("paper")] == "88.91 accuracy, Table 3"
    assert 'setting differs from the paper: train.selection="final" (paper: "test")' in row[1]
    store2 = Store(tmp_path / "r.duckdb")  # a run on a new test set leaves the other pages' names alone
    _completed(store2, "fp8p", "vit-baseline", 0, "ferplus", BASIC8, "m-fp8p", {**FERPLUS, "label_mode": "plurality"})
    render_leaderboard(store2, tmp_path / "again", load_paper_results())
    again = _index_rows(tmp_path / "again")
    assert set(boards.values()) < set(again.values())
    assert "ferplus / official 8 classes, plurality rule, train only" in again


def test_boards_alike_but_for_the_split_name_the_manifest(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.duckdb")
    for manifest in ("aaaa1111", "bbbb2222"):
        _completed(store, f"run-{manifest}", "m", 0, "synthfer", CLASSES, manifest, {"samples": 400})
    render_leaderboard(store, tmp_path / "site")
    assert set(_index_rows(tmp_path / "site")) == {"synthfer / official split aaaa1111",
                                                   "synthfer / official split bbbb2222"}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lb_example")
    target.mkdir(parents=True, exist_ok=True)
    db = target / "example.duckdb"
    for stale in (db, db.with_name(db.name + ".lock")):
        stale.unlink(missing_ok=True)
    print(render_leaderboard(build_example(db), target, paper_results=[paper_row("alpha_net", 90.0)]))


def test_metrics_beyond_the_ranked_ones_are_columns_the_reader_can_show(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.duckdb")
    for run_id, method in (("with-kappa", "alpha_net"), ("without", "beta_net")):
        _completed(store, run_id, method, 0, DATASET, CLASSES, "man-k", {})
    store.save_fold_metrics("with-kappa", 0, {"kappa": 0.81234})  # a plugin's metric, not installed here
    render_leaderboard(store, tmp_path / "site")
    page = next((tmp_path / "site").glob(f"{DATASET}--official--*.html")).read_text()
    assert '<input type="checkbox" id="show-1"><label for="show-1">kappa</label>' in page
    assert "#show-1:checked ~ .scroll .extra-1 { display: table-cell; }" in page
    cells = re.findall(r'<td class="num extra extra-1">([^<]*)<', page)
    assert sorted(cells) == ["0.8123 ", "— "]  # as the metric declares (a stand-in: 4 digits), never x100


def test_index_cells_are_coloured_by_verification_and_list_published_settings(site: Path) -> None:
    text = (site / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<td class="num cell st-reproduced">\s*<a class="score" href="[^"]+#entry-1">85\.00', text)
    store = Store(site.parent / "results.duckdb")
    other = site.parent / "with-shipped-rows"
    from ferbench.paper_results import load_paper_results

    render_leaderboard(store, other, load_paper_results())
    rows = {row[0]: row for row in _parse(other / "index.html").tables["matrix"][1:]}
    assert "rafdb / official, 7 classes published only" in rows  # a published setting without a run
    header = _parse(other / "index.html").tables["matrix"][0]
    mimic = rows["rafdb / official, 7 classes published only"][[h.split()[0] for h in header].index("mimic")]
    assert mimic == "paper 91.26 not run"  # MIMIC's best own RAF-DB number (ViT-L), not reproduced yet


def test_board_csv_holds_the_ranking_with_intervals(site: Path) -> None:
    import csv

    rows = list(csv.DictReader(_dataset_page(site).with_suffix(".csv").open(encoding="utf-8")))
    assert [(row["rank"], row["method"], row["seeds"]) for row in rows] == [("1", "alpha_net", "2"), ("1", "beta_net", "2")]
    alpha = rows[0]
    mean = 100 * statistics.mean(_seed_means("alpha_net", _accuracy))
    assert float(alpha["accuracy_mean"]) == pytest.approx(mean)
    assert float(alpha["accuracy_ci95_low"]) <= mean <= float(alpha["accuracy_ci95_high"])
    assert (alpha["paper_value"], alpha["verification"], alpha["runs"]) == ("90.0", "reproduced", "alpha_net-s0 alpha_net-s1")
    assert rows[1]["tied"] == "True" and rows[1]["selection"] == "test"


def test_cross_dataset_matrix_of_evaluation_runs(tmp_path: Path) -> None:
    """Weights trained on one test set's data and evaluated (ferbench eval) on another's: a matrix cell."""
    store = Store(tmp_path / "r.duckdb")
    _completed(store, "source", "alpha_net", 0, "synthfer", CLASSES, "m-one", {"seed": 0})
    _completed(store, "evaluated", "alpha_net", 1, "synthfer", CLASSES, "m-two", {"seed": 1})
    store.update_run("evaluated", kind="eval", weights={"eval.weights": {"ref": "run:source/fold-0"}})
    render_leaderboard(store, tmp_path / "site")
    cross = _parse(tmp_path / "site" / "index.html").tables["cross"]
    (row,) = cross[1:]
    assert row[0].startswith("alpha_net · synthfer / official")
    own, other = (f"{100 * _accuracy(LABELS[0], PREDICTIONS[('alpha_net', seed)][0]):.2f}" for seed in (0, 1))
    assert sorted(row[1:]) == sorted([f"{own} seed 0", f"{other} eval"])  # the diagonal: the source run's own score


def test_sample_browser_caps_the_rows_it_embeds() -> None:
    import numpy as np

    from ferbench.bootstrap import FoldSamples, RunSamples
    from ferbench.runpage import sample_rows

    samples = RunSamples("r", {0: FoldSamples(["a", "b", "c", "d"], np.array([0, 1, 1, 2]), np.array([0, 1, 0, 2]),
                                              np.array([0.9, 0.8, 0.55, 0.7]))})
    data = sample_rows(RunView({"run_id": "r", "classes": CLASSES}), samples, cap=3)
    assert data["total"] == 4 and data["rows"] == [[0, "a", 0, 0, 0.9], [0, "b", 1, 1, 0.8], [0, "c", 1, 0, 0.55]]
    assert data["classes"] == CLASSES

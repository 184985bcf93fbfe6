"""The generated leaderboard in a real browser (headless Chromium driven by Selenium), and its escaping.

Every page kind loads without console errors, every link between index, board, run and sample pages
resolves, sorting reorders rows, filters hide rows, two pinned entries compare head to head, and the
sample browser filters by class; screenshots of each page kind are saved under the test's output folder
(or ``$FERBENCH_SCREENSHOTS``). Markup stored in a method name (from a plugin), a config value, sample ids
and class names shows as text and never runs. The browser tests need Debian's ``chromium`` and
``chromium-driver`` (``.ci/run`` installs them when it can) and are skipped, saying so, where there are none.
"""
from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlparse

import pytest

from conftest import CLASSES, TOY_PLUGIN_DIR, build_example, ferbench, foreign_scripts, run_id_of

from ferbench.leaderboard import render_leaderboard
from ferbench.paper_results import load_paper_results

sys.path.insert(0, str(TOY_PLUGIN_DIR))
import hostile_plugin  # noqa: E402 - the test plugin's names, as the assertions look for them

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PAGE_KINDS = ("index", "board", "run", "samples", "published", "data")


def _browser_paths() -> tuple[str, str] | None:
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    """A headless Chromium with its console log readable; skips the test where none can be started."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    paths = _browser_paths()
    if paths is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; .ci/run does so when it runs as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", "--allow-file-access-from-files"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example database's site with the shipped published rows."""
    root = tmp_path_factory.mktemp("browser")
    render_leaderboard(build_example(root / "results.duckdb"), root / "site", load_paper_results())
    return root / "site"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("FERBENCH_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(chrome: Any, page: Path) -> list[dict[str, Any]]:
    """Load ``page`` and return the console messages it logged at error level."""
    chrome.get_log("browser")  # drop what earlier pages logged
    chrome.get(page.as_uri())
    chrome.execute_script("return document.readyState")
    return [entry for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]


def _visible_rows(chrome: Any, table: str) -> list[Any]:
    return chrome.execute_script(
        f"return Array.from(document.querySelectorAll('#{table} tbody tr')).filter(r => !r.hidden && r.offsetParent)")


def _ids(page: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))


def _check_links(chrome: Any, page: Path, site: Path) -> int:
    """Every link, stylesheet, script and image of the loaded page points at a file of the site (and an
    element id of it, for a fragment); the sample search fragment ``#find=`` points at a sample browser."""
    targets = chrome.execute_script(
        "return Array.from(document.querySelectorAll('a[href], link[href], script[src], img[src]'))"
        ".map(e => e.href || e.src)")
    for target in targets:
        url = urlparse(target)
        assert url.scheme == "file", f"{page.name}: external or odd link {target}"
        path = Path(unquote(url.path))
        assert path.is_file() and site.resolve() in path.resolve().parents, f"{page.name}: {target}"
        if url.fragment.startswith("find="):
            assert path.parent.name == "samples", target
        elif url.fragment:
            assert url.fragment in _ids(path), f"{page.name}: {target}"
    return len(targets)


def _page_of_kind(site: Path, kind: str) -> Path:
    return {"index": site / "index.html", "published": site / "published.html", "data": site / "data.html",
            "board": next(site.glob("*--*.html")), "run": site / "runs" / "alpha_net-s0.html",
            "samples": site / "samples" / "alpha_net-s0.html"}[kind]


def test_every_page_loads_without_console_errors_and_links_resolve(chrome: Any, site: Path, shots: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert {page.parent.name for page in pages} == {site.name, "runs", "samples"}
    links = 0
    for page in pages:
        assert _open(chrome, page) == [], page.name
        assert "html js" in chrome.execute_script("return 'html ' + document.documentElement.className")
        links += _check_links(chrome, page, site)
    assert links > 100
    for kind in PAGE_KINDS:
        _open(chrome, _page_of_kind(site, kind))
        height = chrome.execute_script("return document.body.scrollHeight")
        chrome.set_window_size(1400, min(max(height + 40, 600), 4000))
        assert chrome.save_screenshot(str(shots / f"{kind}.png"))
    chrome.set_window_size(1400, 1000)
    print(f"screenshots: {shots}")


def _column_values(chrome: Any, table: str, column: int) -> list[float]:
    return [float(row.find_elements("css selector", "td, th")[column].get_attribute("data-value"))
            for row in _visible_rows(chrome, table)]


def _click_header(chrome: Any, table: str, text: str) -> int:
    headers = chrome.find_elements("css selector", f"#{table} thead th")
    index = next(i for i, header in enumerate(headers) if header.text.strip() == text)
    headers[index].click()
    return index


def test_sorting_a_column_reorders_rows(chrome: Any, site: Path) -> None:
    _open(chrome, site / "published.html")
    before = _column_values(chrome, "published", 6)
    column = _click_header(chrome, "published", "value")
    ascending = _column_values(chrome, "published", column)
    assert ascending == sorted(before) and ascending != before
    _click_header(chrome, "published", "value")
    assert _column_values(chrome, "published", column) == sorted(before, reverse=True)
    _open(chrome, _page_of_kind(site, "board"))
    column = _click_header(chrome, "ranking", "accuracy")
    scores = _column_values(chrome, "ranking", column)
    assert scores == sorted(scores) and scores[0] < scores[-1]  # worst first: the ranking's order reversed
    assert [row.get_attribute("data-method") for row in _visible_rows(chrome, "ranking")] == ["beta_net", "alpha_net"]


def test_filters_hide_rows(chrome: Any, site: Path) -> None:
    from selenium.webdriver.support.ui import Select

    _open(chrome, site / "published.html")
    total = len(_visible_rows(chrome, "published"))
    chrome.find_element("css selector", ".table-filter[data-table='published']").send_keys("SCN")
    shown = _visible_rows(chrome, "published")
    assert 0 < len(shown) < total and all("SCN" in row.text for row in shown)
    chrome.find_element("css selector", ".table-filter[data-table='published']").clear()
    chrome.execute_script("document.querySelector('.table-filter').dispatchEvent(new Event('input'))")
    Select(chrome.find_element("css selector", ".column-filter[data-column='dataset']")).select_by_visible_text("rafdb")
    shown = _visible_rows(chrome, "published")
    assert 0 < len(shown) < total and {row.get_attribute("data-dataset") for row in shown} == {"rafdb"}
    _open(chrome, _page_of_kind(site, "board"))
    Select(chrome.find_element("css selector", ".column-filter[data-column='method']")).select_by_visible_text("beta_net")
    assert [row.get_attribute("data-method") for row in _visible_rows(chrome, "ranking")] == ["beta_net"]


def test_two_pinned_entries_compare_head_to_head(chrome: Any, site: Path, shots: Path) -> None:
    board = _page_of_kind(site, "board")
    _open(chrome, board)
    assert not chrome.find_elements("css selector", "#compare-recall")
    for box in chrome.find_elements("css selector", "input.pin"):
        box.click()
    recall = chrome.find_elements("css selector", "#compare-recall tbody tr")
    assert [row.find_element("css selector", "th").text for row in recall] == CLASSES
    assert len(chrome.find_elements("css selector", "#compare-confusion tbody tr")) == len(CLASSES)
    only_a = chrome.find_elements("css selector", "#compare-a-only tbody tr")
    assert only_a, "alpha_net gets some samples right that beta_net gets wrong"
    assert chrome.save_screenshot(str(shots / "board-compare.png"))
    sample_id = only_a[0].find_element("css selector", "code").text
    link = only_a[0].find_element("css selector", "a").get_attribute("href")
    _check_links(chrome, board, site)
    chrome.get(link)
    rows = _visible_rows(chrome, "samples")
    assert [row.find_element("css selector", "code").text for row in rows] == [sample_id]
    assert not [entry for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]


def test_sample_browser_filters_by_true_and_predicted_class(chrome: Any, site: Path) -> None:
    from selenium.webdriver.support.ui import Select

    assert _open(chrome, site / "samples" / "beta_net-s1.html") == []
    assert len(_visible_rows(chrome, "samples")) == 20  # both folds
    Select(chrome.find_element("id", "true-filter")).select_by_visible_text("sad")
    rows = [row.find_elements("css selector", "td") for row in _visible_rows(chrome, "samples")]
    assert rows and all(cells[2].text == "sad" for cells in rows)
    Select(chrome.find_element("id", "outcome-filter")).select_by_visible_text("wrong")
    rows = [row.find_elements("css selector", "td") for row in _visible_rows(chrome, "samples")]
    assert rows and all(cells[2].text == "sad" != cells[3].text for cells in rows)
    Select(chrome.find_element("id", "pred-filter")).select_by_visible_text("angry")
    assert all(row.find_elements("css selector", "td")[3].text == "angry" for row in _visible_rows(chrome, "samples"))


# --- hostile names --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site of one real run of the hostile plugin's method on its dataset, with a hostile config value."""
    root = tmp_path_factory.mktemp("hostile")
    env = {**os.environ, "FERBENCH_HOME": str(root / "home"), "FERBENCH_DB": str(root / "results.duckdb"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TOY_PLUGIN_DIR), os.environ.get("PYTHONPATH", "")])),
           "FERBENCH_PLUGINS": "hostile_plugin"}
    env.pop("FERBENCH_DATA_ROOT", None)
    result = ferbench("run", "--method", hostile_plugin.METHOD, "--dataset", "hostile-synth", "--preset", "tiny",
                      "--set", "dataset.samples=210", "--set", "dataset.subjects=10",
                      "--set", f"model.note={''.join(hostile_plugin.HOSTILE)}", "--json", env=env)
    assert run_id_of(result)
    ferbench("leaderboard", "--out", str(root / "site"), env=env)
    return root / "site"


class _Elements(HTMLParser):
    """Every element's tag and attributes, as a browser would parse them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_hostile_strings_are_escaped_in_every_page(hostile_site: Path) -> None:
    texts = {page: page.read_text(encoding="utf-8") for page in sorted(hostile_site.rglob("*.html"))}
    for page, text in texts.items():
        assert not foreign_scripts(text), page.name
        for tag, attrs in _Elements(text).found:  # no event handler and no injected image anywhere
            assert not any(name.startswith("on") for name in attrs), (page.name, tag, attrs)
            assert not (tag == "img" and attrs.get("src") == "x"), page.name
    assert any("{{7*7}}" in text for text in texts.values())  # the template syntax stays text
    run_page = next(page for page in texts if page.parent.name == "runs")
    assert "&lt;script&gt;window.__owned" in texts[run_page]


def test_hostile_strings_show_as_text_and_do_not_run_in_the_browser(chrome: Any, hostile_site: Path) -> None:
    run_page = next((hostile_site / "runs").glob("*.html"))
    expected = {hostile_site / "index.html": [hostile_plugin.METHOD],
                next(hostile_site.glob("*--*.html")): [hostile_plugin.METHOD, *hostile_plugin.HOSTILE],
                run_page: [hostile_plugin.METHOD, *hostile_plugin.HOSTILE],  # classes, the config value
                hostile_site / "samples" / run_page.name: list(hostile_plugin.HOSTILE)}  # classes, sample ids
    for page, literals in expected.items():
        assert _open(chrome, page) == [], page.name  # an <img src=x> would log its failed load
        if len(chrome.find_elements("css selector", "input.pin")) >= 2:
            for box in chrome.find_elements("css selector", "input.pin")[:2]:
                box.click()
        assert chrome.execute_script("return window.__owned === undefined"), page.name
        assert chrome.execute_script(
            "return document.querySelectorAll('img[src=\"x\"], [onerror], body script:not([src]):not([type])').length") == 0
        text = chrome.find_element("tag name", "body").text
        assert all(literal in text for literal in literals), page.name

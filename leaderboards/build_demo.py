"""Regenerate ``leaderboards/synthfer-demo/``, the leaderboard of ferbench's embedded dataset.

    python leaderboards/build_demo.py              # train the runs, then render the site
    python leaderboards/build_demo.py --render     # re-render from the runs already recorded
    python leaderboards/build_demo.py --fresh      # forget the recorded runs and train them all again
    python leaderboards/build_demo.py --render --screenshots   # also the README's screenshots (needs the
                                                   # test extra's selenium and Debian's chromium + chromium-driver)

Runs ``vit-baseline``, ``mimic``, ``nr-fpdls`` and ``rgbd-fusion`` with their ``tiny`` presets on synthfer's
official (subject-independent) split for seeds 0, 1 and 2 (``vit-baseline`` with 10 of its 20 tiny
epochs, to keep the whole build within about 15 CPU minutes), evaluates the seed-0 ``vit-baseline``
weights on a second synthetic dataset (other faces and fewer of them, harder: ``dataset.seed=1``,
``dataset.samples=2000``, ``dataset.difficulty=1.0``; its own test set, so its own board) for the
cross-dataset matrix, and renders the site with the published results shipped with ferbench.
The database (``leaderboards/synthfer-demo.duckdb``) and its kept weights are ignored by git; the site
is committed, so a visitor opens ``leaderboards/synthfer-demo/index.html`` without installing anything.
Two runs train at a time, one CPU thread each (``--jobs``). Runs already completed in the database are
kept, and an interrupted build resumes where it stopped (``ferbench run`` resumes an interrupted run).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DB = Path("leaderboards") / "synthfer-demo.duckdb"  # relative: the site's footer names it so
SITE = Path("leaderboards") / "synthfer-demo"
SEEDS = (0, 1, 2)
#: (method, extra --set switches) trained per seed
METHODS = (("vit-baseline", ["train.epochs=10"]), ("mimic", []), ("nr-fpdls", []), ("rgbd-fusion", []))
#: the second synthetic dataset the seed-0 vit-baseline weights are evaluated on
OTHER_DATASET = ["dataset.seed=1", "dataset.samples=2000", "dataset.difficulty=1.0"]


def ferbench(*args: str, threads: int = 1) -> str:
    """Run ``python -m ferbench ARGS --db DB`` from the repository root; its standard output."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    result = subprocess.run([sys.executable, "-m", "ferbench", *args, "--db", str(DB)], cwd=ROOT, env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"ferbench {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def train(method: str, switches: list[str], seed: int) -> None:
    sets = [part for switch in switches for part in ("--set", switch)]
    ferbench("run", "--method", method, "--dataset", "synthfer", "--preset", "tiny", "--seed", str(seed), *sets,
             "--no-progress")
    print(f"  {method} seed {seed}: done", flush=True)


def completed(kind: str) -> dict[tuple[str, int], tuple[str, str]]:
    """(method, seed) -> (run id, config hash) of the completed runs of ``kind`` in the demo database."""
    if not (ROOT / DB).exists():
        return {}
    sys.path.insert(0, str(ROOT))
    from ferbench.store import Store

    rows = Store(ROOT / DB).query("SELECT method, seed, run_id, config_hash FROM runs WHERE status = 'completed' "
                                  "AND kind = ? ORDER BY started_at", [kind])
    return {(row["method"], row["seed"]): (row["run_id"], row["config_hash"]) for row in rows}


def planned_hash(method: str, switches: list[str]) -> str:
    """The config hash ``ferbench run`` would record for ``method``'s tiny preset with ``switches`` today."""
    from ferbench.config import config_hash, parse_assignment
    from ferbench.planning import RunRequest, plan_run

    request = RunRequest(method=method, dataset="synthfer", preset="tiny",
                         assignments=[parse_assignment(switch) for switch in switches])
    return config_hash(plan_run(request, resolve_weights=False).config)


def build_runs(jobs: int, fresh: bool) -> None:
    if fresh:
        for stale in (ROOT / DB, ROOT / f"{DB}.lock", ROOT / f"{DB}.wal"):
            stale.unlink(missing_ok=True)
        shutil.rmtree(ROOT / DB.with_name(DB.stem + "-artifacts"), ignore_errors=True)
    done = completed("train")
    if done:  # runs of an earlier config would stand beside the new ones on the board
        current = {method: planned_hash(method, switches) for method, switches in METHODS}
        stale = [f"{method} seed {seed}" for (method, seed), (_, recorded) in done.items()
                 if method in current and recorded != current[method]]
        if stale:
            raise SystemExit(f"the demo database holds runs of an earlier config ({', '.join(stale)}): a preset "
                             "changed since; rebuild everything with --fresh")
    work = [(method, switches, seed) for seed in SEEDS for method, switches in METHODS if (method, seed) not in done]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda item: train(*item), work))
    if ("vit-baseline", 0) in completed("eval"):
        return
    sets = [part for switch in OTHER_DATASET for part in ("--set", switch)]
    ferbench("eval", "--method", "vit-baseline", "--dataset", "synthfer", "--weights",
             f"run:{completed('train')[('vit-baseline', 0)][0]}", *sets, "--no-progress")
    print("  vit-baseline seed 0 evaluated on the second synthetic dataset", flush=True)


def render() -> None:
    shutil.rmtree(ROOT / SITE, ignore_errors=True)
    ferbench("leaderboard", "--out", str(SITE))
    print(f"site: {ROOT / SITE / 'index.html'}")


def screenshots() -> None:
    """The README's pictures: the synthfer board with its two best entries compared head to head, and the
    page of the first vit-baseline run (``docs/images/leaderboard-board.png``, ``-run.png``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    site, images = ROOT / SITE, ROOT / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    try:
        board = max(site.glob("synthfer--*.html"), key=lambda page: page.read_text(encoding="utf-8").count('class="pin'))
        driver.get(board.as_uri())
        for box in driver.find_elements("css selector", "input.pin")[:2]:
            box.click()
        driver.save_screenshot(str(images / "leaderboard-board.png"))
        run = driver.find_element("css selector", "#ranking td.runs a").get_attribute("href")
        driver.get(run)
        driver.execute_script("document.getElementById('recall').scrollIntoView()")
        driver.save_screenshot(str(images / "leaderboard-run.png"))
    finally:
        driver.quit()
    print(f"screenshots: {images}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true", help="only re-render the site from the recorded runs")
    parser.add_argument("--fresh", action="store_true", help="delete the recorded runs and train them all again")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (default 2, one thread each)")
    parser.add_argument("--screenshots", action="store_true", help="also save the README's screenshots (selenium)")
    args = parser.parse_args()
    started = time.perf_counter()
    if not args.render:
        build_runs(args.jobs, args.fresh)
    render()
    if args.screenshots:
        screenshots()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"took {time.perf_counter() - started:.0f} s wall, {used.ru_utime + used.ru_stime:.0f} s CPU")


if __name__ == "__main__":
    main()

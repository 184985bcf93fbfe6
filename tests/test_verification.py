"""Verification status of published rows: reproduced / below / above / setting differs / not run."""
from __future__ import annotations

from ferbench.boards import RunView, build_boards
from ferbench.paper_results import PaperResult, PaperSetting, Pretraining, Reproduction
from ferbench.verification import Verification, compare_keys, judge, verify

SL, MAE = "timm:vit_base_patch16_224.augreg_in21k_ft_in1k", "timm:vit_base_patch16_224.mae"
PRESET = {"model.weights": SL, "train.selection": "final", "model.arch": "vit_base_patch16_224"}


def _row(value: float, variant: str, method: str | None = "vit-baseline", pretrain: Pretraining | None = None,
         **switches: object) -> PaperResult:
    reproduce = Reproduction(method, "paper", {"train.selection": "test", **{k.replace("__", "."): v
                                                                            for k, v in switches.items()}},
                             pretrain) if method else None
    return PaperResult(name="ViT baseline", dataset="rafdb", protocol="official",
                       setting=PaperSetting(7, "train", "highest test accuracy", name="pfvit-rafdb"), metric="accuracy",
                       value=value, source="PF-ViT", table="Table 3", variant=variant, reproduce=reproduce,
                       cited="" if method else "[32]")


def _run(run_id: str, seed: int, accuracy: float, weights: str, selection: str = "test") -> RunView:
    return RunView({"run_id": run_id, "method": "vit-baseline", "preset": "paper", "config_hash": f"c-{weights}-{selection}",
                    "dataset": "rafdb", "protocol": "official", "manifest_hash": "m", "classes": list("abcdefg"),
                    "seed": seed, "status": "completed", "selection_rule": selection,
                    "config": {"model": {"weights": weights, "arch": "vit_base_patch16_224"}, "train": {"selection": selection}}},
                   metrics={0: {"accuracy": accuracy}})


def _verify(rows: list[PaperResult], runs: list[RunView], intervals: dict[str, tuple[float, float]],
            installed: set[str] = frozenset({"vit-baseline"})) -> dict[str, tuple[Verification, object]]:
    rows = compare_keys(rows, lambda method, preset, dataset: PRESET if method in installed else None)
    boards = build_boards(runs, {"m": 1}, rows, {})
    for entry in (entry for board in boards for entry in board.entries):
        entry.intervals = {"accuracy": intervals[entry.config_hash]}
    return {check.paper.variant: (check.status, check) for check in verify(rows, boards, installed)}


def test_rows_are_judged_against_the_interval_of_the_entry_with_their_setting() -> None:
    rows = [_row(90.0, "MAE", model__weights=MAE), _row(85.0, "SL"), _row(70.0, "SL, low")]
    runs = [_run("mae-0", 0, 0.89, MAE), _run("mae-1", 1, 0.91, MAE), _run("sl-0", 0, 0.80, SL)]
    found = _verify(rows, runs, {f"c-{MAE}-test": (0.88, 0.92), f"c-{SL}-test": (0.78, 0.82)})
    assert found["MAE"][0] is Verification.REPRODUCED and round(found["MAE"][1].delta, 6) == 0.0
    assert found["SL"][0] is Verification.BELOW and round(found["SL"][1].delta, 6) == -5.0  # 80 vs 85
    assert found["SL, low"][0] is Verification.ABOVE and found["SL, low"][1].interval == (78.0, 82.0)
    assert found["MAE"][1].entry.seeds == [0, 1]


def test_a_switch_another_row_sets_is_compared_at_the_presets_value() -> None:
    """The supervised row sets no weights, but its MAE sibling does: an MAE entry is not its reproduction."""
    rows = [_row(90.0, "MAE", model__weights=MAE), _row(85.0, "SL")]
    assert compare_keys(rows, lambda *_: PRESET)[1].run_switches == {"model.weights": SL, "train.selection": "test"}
    found = _verify(rows, [_run("mae-0", 0, 0.9, MAE)], {f"c-{MAE}-test": (0.88, 0.92)})
    status, check = found["SL"]
    assert status is Verification.SETTING_DIFFERS
    assert check.differences == [f'model.weights="{MAE}" (paper: "{SL}")'] and round(check.delta, 6) == 5.0


def test_epoch_selection_that_differs_from_the_papers_is_flagged() -> None:
    found = _verify([_row(80.0, "SL")], [_run("sl-final", 0, 0.80, SL, selection="final")], {f"c-{SL}-final": (0.7, 0.9)})
    assert found["SL"][0] is Verification.SETTING_DIFFERS
    assert found["SL"][1].differences == ['train.selection="final" (paper: "test")']


def test_placeholders_match_a_pre_training_run() -> None:
    row = _row(91.0, "MAE AffectNet", pretrain=Pretraining("mae", "affectnet8", "paper"), model__weights="run:<pretrain>")
    found = _verify([row], [_run("ft", 0, 0.9, "run:20261201-abc")], {"c-run:20261201-abc-test": (0.89, 0.93)},
                    installed={"vit-baseline", "mae"})
    assert found["MAE AffectNet"][0] is Verification.REPRODUCED


def test_rows_without_a_reproduction_say_why() -> None:
    rows = [_row(88.0, "cited", method=None), _row(87.0, "other method", method="pfvit"),
            _row(86.0, "needs mae", pretrain=Pretraining("mae", "affectnet8", "paper"), model__weights="run:<pretrain>"),
            _row(85.0, "SL")]
    found = _verify(rows, [], {})
    assert [found[v][0] for v in ("cited", "other method", "needs mae", "SL")] == [
        Verification.NO_METHOD, Verification.NOT_INSTALLED, Verification.NOT_INSTALLED, Verification.NOT_RUN]
    assert found["SL"][1].delta is None and found["SL"][1].entry is None


def test_judge_without_an_interval_compares_the_mean() -> None:
    row = compare_keys([_row(80.0, "SL")], lambda *_: PRESET)[0]
    (board,) = build_boards([_run("a", 0, 0.8, SL)], {"m": 1}, [row], {})
    assert judge(board.entries[0], row, []) is Verification.REPRODUCED  # 80.0 == 80.0, no interval

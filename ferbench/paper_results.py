"""Published results shown beside reproduced ones: a curated, validated data file.

Each row of ``paper_results.yaml`` says what a paper reports -- method and variant, dataset and
protocol, the paper's setting in its own words (class count, the parts trained on, how the epoch was
chosen), metric, value in percent, source document and table -- and how ferbench reproduces it: the
method's preset plus ``config`` switches as dotted keys (``dataset.train_on_valid: true``,
``train.selection: test``).

A leaderboard board shows a row's number only where the board holds the paper's test setting: same
dataset, protocol and class count, and every ``dataset.*`` switch equal to the dataset options of all
the board's runs. Within such a board, an entry of the row's method and preset whose other switches
differ (e.g. ``train.selection: final`` where the paper took the best epoch on test) keeps the number
but is flagged with the differences.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .datafiles import read_yaml
from .errors import UsageError
from .metrics import PERCENT_METRICS

SHIPPED = Path(__file__).with_name("paper_results.yaml")
VERSION = 1
_REQUIRED = ("method", "preset", "dataset", "protocol", "setting", "metric", "value", "source", "table")
_OPTIONAL = ("variant", "config")
_SETTING = ("classes", "training", "selection")


@dataclass(frozen=True)
class PaperSetting:
    """The setting a paper reports under, in its own words."""

    classes: int
    training: str  # the parts trained on, e.g. "train + valid"
    selection: str  # how the reported epoch was chosen, e.g. "best epoch on test"

    def describe(self) -> str:
        return f"{self.classes} classes; trained on {self.training}; {self.selection}"


@dataclass(frozen=True)
class PaperResult:
    """One published number and the ferbench configuration that reproduces its setting."""

    method: str
    preset: str
    dataset: str
    protocol: str
    setting: PaperSetting
    metric: str
    value: float  # percent
    source: str
    table: str
    variant: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)  # dotted key -> value

    @property
    def dataset_options(self) -> dict[str, Any]:
        """The ``dataset.*`` switches, without the prefix: they decide which boards hold the setting."""
        return {key.split(".", 1)[1]: value for key, value in self.config.items() if key.startswith("dataset.")}

    @property
    def run_switches(self) -> dict[str, Any]:
        """The other switches (training, epoch selection): an entry that differs in them is flagged."""
        return {key: value for key, value in self.config.items() if not key.startswith("dataset.")}


def load_paper_results(path: Path | None = None) -> list[PaperResult]:
    """The rows of ``path`` (default: the table shipped with ferbench), validated; a malformed file
    raises a one-line UsageError naming the file, the row and the problem."""
    source = Path(path) if path else SHIPPED
    return parse_paper_results(read_yaml(source, "published results"), str(source))


def parse_paper_results(data: Any, where: str = "published results") -> list[PaperResult]:
    """Validate the loaded YAML (``version: 1`` and a ``results`` list of rows) into rows."""
    if not isinstance(data, Mapping) or set(data) != {"version", "results"}:
        raise UsageError(f"{where}: expected a mapping with exactly the keys 'version' ({VERSION}) and 'results' "
                         "(a list of published rows)")
    if data["version"] != VERSION:
        raise UsageError(f"{where}: version {data['version']!r} is not supported; expected version: {VERSION}")
    if not isinstance(data["results"], list):
        raise UsageError(f"{where}: 'results' must be a list of rows, got {type(data['results']).__name__}")
    rows = [_row(raw, f"{where}: results[{index}]") for index, raw in enumerate(data["results"])]
    seen: dict[tuple[Any, ...], int] = {}
    for index, row in enumerate(rows):
        key = (row.method, row.preset, row.dataset, row.protocol, row.metric, row.variant,
               tuple(sorted((k, repr(v)) for k, v in row.config.items())))
        if key in seen:
            raise UsageError(f"{where}: results[{index}] repeats results[{seen[key]}] ({row.method} on {row.dataset}, "
                             "same variant and config); give the rows distinct variants or remove one")
        seen[key] = index
    return rows


def _row(raw: Any, where: str) -> PaperResult:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where}: expected a mapping with the keys {', '.join(_REQUIRED)}")
    where = f"{where} ({raw.get('method', '?')} on {raw.get('dataset', '?')})"
    _keys(raw, _REQUIRED, _OPTIONAL, where)
    text = {key: _text(raw.get(key, ""), key, where, required=key in _REQUIRED)
            for key in ("method", "preset", "dataset", "protocol", "metric", "source", "table", "variant")}
    if text["metric"] not in PERCENT_METRICS:
        raise UsageError(f"{where}: metric {text['metric']!r} is not shown on leaderboards; choose one of: "
                         f"{', '.join(PERCENT_METRICS)}")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise UsageError(f"{where}: value {value!r} must be a number of percent in [0, 100]")
    return PaperResult(**text, setting=_setting(raw["setting"], where), value=float(value),
                       config=_config(raw.get("config", {}), where))


def _keys(raw: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...], where: str) -> None:
    missing = [key for key in required if key not in raw]
    unknown = [str(key) for key in raw if key not in required + optional]
    if missing or unknown:
        problem = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                              f"unknown {', '.join(unknown)}" if unknown else "") if part)
        raise UsageError(f"{where}: {problem}; expected the keys {', '.join(required)} (and optionally "
                         f"{', '.join(optional) or 'nothing else'})")


def _text(value: Any, key: str, where: str, required: bool) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise UsageError(f"{where}: {key} must be {'a non-empty' if required else 'a'} string, got {value!r}")
    return value.strip()


def _setting(raw: Any, where: str) -> PaperSetting:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where}: setting must be a mapping with the keys {', '.join(_SETTING)}")
    _keys(raw, _SETTING, (), f"{where} setting")
    classes = raw["classes"]
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise UsageError(f"{where}: setting.classes must be a whole number of classes >= 2, got {classes!r}")
    return PaperSetting(classes, _text(raw["training"], "setting.training", where, True),
                        _text(raw["selection"], "setting.selection", where, True))


def _config(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where}: config must be a mapping of dotted keys, e.g. dataset.train_on_valid: true")
    for key, value in raw.items():
        if not isinstance(key, str) or "." not in key or any(not part for part in key.split(".")):
            raise UsageError(f"{where}: config key {key!r} must be a dotted ferbench key such as train.selection")
        if isinstance(value, Mapping):
            raise UsageError(f"{where}: config value of {key} must be a single value or a list, not a mapping")
    return dict(raw)

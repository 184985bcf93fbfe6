"""Published results shown beside reproduced ones: the curated, versioned file of every paper number.

The file (``leaderboards/published-results.yaml`` in the repository; the package reads it through the
``published_results.yaml`` link beside this module, so there is one copy) names the source documents,
the papers' evaluation settings and their tables. A table lists columns (settings, in the paper's column
order) and rows (the paper's method name, variant, one value per column); expanding a table gives one
:class:`PaperResult` per printed number, with the paper's setting in its words (class count, the parts
trained on, the protocol, how the epoch was chosen), the source and table, and -- where a ferbench method
reproduces it -- a :class:`Reproduction`: method, preset, ``--set`` switches and an optional pre-training run.

A leaderboard board shows a row only where the board holds the paper's test setting: same dataset,
protocol and class count, and every dataset option of the setting equal to those of all the board's runs.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .datafiles import read_yaml
from .errors import UsageError
from .settings import RANKED_METRICS

SHIPPED = Path(__file__).with_name("published_results.yaml")
VERSION = 2
#: A switch value holding ``<...>`` stands for what the user supplies (a run id, a local file).
PLACEHOLDER = re.compile(r"<[^<>]+>")

_TOP = ("version", "sources", "settings", "tables")
_SOURCE = (("title",), ("document",))
_SETTING = (("dataset", "protocol", "classes", "training", "selection"), ("split", "options", "switches"))
_TABLE = (("source", "table", "metric", "columns", "rows"), ("title",))
_ROW = (("method", "values"), ("variant", "reproduce", "cited"))
_REPRODUCE = (("method", "preset"), ("set", "pretrain"))
_PRETRAIN = (("method", "dataset", "preset"), ())


@dataclass(frozen=True)
class PaperSetting:
    """The setting a paper reports under, in its own words."""

    classes: int
    training: str  # the parts trained on, e.g. "train + valid"
    selection: str  # how the reported epoch was chosen, e.g. "highest test accuracy over epochs"
    split: str = ""  # the protocol / test data in the paper's words
    name: str = ""  # the setting's name in the file

    def describe(self) -> str:
        split = f"; {self.split}" if self.split else ""
        return f"{self.classes} classes; trained on {self.training}{split}; {self.selection}"


@dataclass(frozen=True)
class Pretraining:
    """A pre-training run a reproduction starts from (``model.weights=run:<its id>``)."""

    method: str
    dataset: str
    preset: str

    def command(self) -> str:
        return f"ferbench pretrain --method {self.method} --dataset {self.dataset} --preset {self.preset}"


@dataclass(frozen=True)
class Reproduction:
    """The ferbench configuration that reproduces a published row."""

    method: str
    preset: str
    switches: Mapping[str, Any] = field(default_factory=dict)  # non-dataset --set switches (setting's + row's)
    pretrain: Pretraining | None = None


@dataclass(frozen=True)
class PaperResult:
    """One published number, its setting, its source and the ferbench configuration that reproduces it."""

    name: str  # the method as the paper names it
    dataset: str
    protocol: str  # "" when no ferbench protocol is the paper's
    setting: PaperSetting
    metric: str
    value: float  # percent
    source: str  # the document's title
    table: str
    variant: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # dataset options of the setting (no prefix)
    reproduce: Reproduction | None = None
    cited: str = ""  # the reference a document quotes the number from ("" for its own results)
    document: str = ""  # file name of the source document
    #: switches an entry is compared on: the reproduction's plus the preset's value of each switch that
    #: another row of the same method and preset sets (filled by :func:`ferbench.verification.compare_keys`)
    compared: Mapping[str, Any] | None = None

    @property
    def method(self) -> str:
        """The ferbench method that reproduces the row ("" when none does)."""
        return self.reproduce.method if self.reproduce else ""

    @property
    def preset(self) -> str:
        return self.reproduce.preset if self.reproduce else ""

    @property
    def dataset_options(self) -> dict[str, Any]:
        """The setting's dataset options: they decide which boards hold the setting."""
        return dict(self.options)

    @property
    def run_switches(self) -> dict[str, Any]:
        """The other switches (training, epoch selection): an entry that differs in them is flagged."""
        if self.compared is not None:
            return dict(self.compared)
        return dict(self.reproduce.switches) if self.reproduce else {}

    @property
    def config(self) -> dict[str, Any]:
        """Every ``--set`` switch of the reproduction, dataset options first (dotted keys)."""
        own = dict(self.reproduce.switches) if self.reproduce else {}
        return {**{f"dataset.{key}": value for key, value in self.options.items()}, **own}

    @property
    def key(self) -> str:
        """A short stable id of the row (its source, table, method, variant and setting)."""
        text = json.dumps([self.source, self.table, self.name, self.variant, self.cited, self.setting.name,
                           self.dataset, self.protocol, self.setting.classes])
        return "p" + hashlib.sha1(text.encode()).hexdigest()[:10]

    def commands(self) -> list[str]:
        """The commands that reproduce the row (a pre-training first where it needs one); [] when none does."""
        if self.reproduce is None:
            return []
        protocol = f" --protocol {self.protocol}" if self.protocol else ""
        switches = "".join(f" --set {key}={_switch_text(value)}" for key, value in self.config.items())
        run = f"ferbench run --method {self.method} --dataset {self.dataset}{protocol} --preset {self.preset}{switches}"
        pretrain = self.reproduce.pretrain
        return [pretrain.command(), run] if pretrain else [run]


def _switch_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return f"'{text}'" if re.search(r"[\s<>'\"*?&|;()\[\]]", text) else text


def switch_matches(have: Any, want: Any) -> bool:
    """Whether a run's setting ``have`` is the published row's ``want``. A ``want`` holding ``<...>``
    matches any string with the same text around the placeholder (``run:<pretrain>`` any ``run:`` reference)."""
    if isinstance(want, str) and PLACEHOLDER.search(want):
        pattern = "".join(".+" if PLACEHOLDER.fullmatch(part) else re.escape(part)
                          for part in re.split(f"({PLACEHOLDER.pattern})", want) if part)
        return isinstance(have, str) and re.fullmatch(pattern, have, flags=re.DOTALL) is not None
    if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(have, (int, float)):
        return not isinstance(have, bool) and float(have) == float(want)
    if isinstance(want, list) and isinstance(have, (list, tuple)):
        return len(want) == len(have) and all(switch_matches(h, w) for h, w in zip(have, want))
    return have == want


# --- loading -----------------------------------------------------------------------------------------

def load_paper_results(path: Path | None = None) -> list[PaperResult]:
    """The rows of ``path`` (default: the file shipped with ferbench), validated; a malformed file
    raises a one-line UsageError naming the file, the entry and the problem."""
    source = Path(path) if path else SHIPPED
    if not source.is_file():  # read_yaml says what is wrong with it
        return parse_paper_results(read_yaml(source, "published results"), str(source))
    stat = source.stat()
    return list(_load_cached(str(source), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _load_cached(source: str, mtime_ns: int, size: int) -> tuple[PaperResult, ...]:
    """Parsed rows of an unchanged file (the shipped file is read once per process)."""
    return tuple(parse_paper_results(read_yaml(Path(source), "published results"), source))


def parse_paper_results(data: Any, where: str = "published results") -> list[PaperResult]:
    """Validate a loaded file (version 2: sources, settings, tables) into one row per published number."""
    if isinstance(data, Mapping) and data.get("version") == 1:
        raise UsageError(f"{where}: version 1 (a flat 'results' list) is no longer read; write version {VERSION} "
                         "(sources, settings, tables) as leaderboards/published-results.yaml does")
    if not isinstance(data, Mapping) or set(data) != set(_TOP):
        raise UsageError(f"{where}: expected a mapping with exactly the keys {', '.join(_TOP)} (version {VERSION})")
    if data["version"] != VERSION:
        raise UsageError(f"{where}: version {data['version']!r} is not supported; expected version: {VERSION}")
    sources = {key: _source(raw, f"{where}: sources.{key}") for key, raw in _mapping(data["sources"], "sources", where).items()}
    settings = {name: _setting(name, raw, f"{where}: settings.{name}")
                for name, raw in _mapping(data["settings"], "settings", where).items()}
    if not isinstance(data["tables"], list):
        raise UsageError(f"{where}: 'tables' must be a list of tables, got {type(data['tables']).__name__}")
    rows = [row for index, raw in enumerate(data["tables"])
            for row in _table(raw, sources, settings, f"{where}: tables[{index}]")]
    seen: dict[str, PaperResult] = {}
    for row in rows:
        if row.key in seen:
            raise UsageError(f"{where}: {row.name} ({row.variant or 'no variant'}) on {row.setting.name} appears twice "
                             f"in {row.table}; give the rows distinct variants or remove one")
        seen[row.key] = row
    return rows


def _mapping(raw: Any, name: str, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping) or not all(isinstance(key, str) for key in raw):
        raise UsageError(f"{where}: '{name}' must be a mapping of names to entries")
    return raw


def _keys(raw: Any, spec: tuple[tuple[str, ...], tuple[str, ...]], where: str) -> None:
    required, optional = spec
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where}: expected a mapping with the keys {', '.join(required)}")
    missing = [key for key in required if key not in raw]
    unknown = [str(key) for key in raw if key not in required + optional]
    if missing or unknown:
        problem = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                              f"unknown {', '.join(unknown)}" if unknown else "") if part)
        raise UsageError(f"{where}: {problem}; expected the keys {', '.join(required)} (and optionally "
                         f"{', '.join(optional) or 'nothing else'})")


def _text(value: Any, key: str, where: str, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise UsageError(f"{where}: {key} must be {'a non-empty' if required else 'a'} string, got {value!r}")
    return value.strip()


def _source(raw: Any, where: str) -> dict[str, str]:
    _keys(raw, _SOURCE, where)
    return {"title": _text(raw["title"], "title", where), "document": _text(raw.get("document", ""), "document",
                                                                             where, required=False)}


def _setting(name: str, raw: Any, where: str) -> tuple[PaperSetting, str, str, dict[str, Any], dict[str, Any]]:
    """(setting, dataset, protocol, dataset options, switches) of a named setting."""
    _keys(raw, _SETTING, where)
    classes = raw["classes"]
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise UsageError(f"{where}: classes must be a whole number of classes >= 2, got {classes!r}")
    options = raw.get("options") or {}
    if not isinstance(options, Mapping) or any(not isinstance(k, str) or "." in k for k in options):
        raise UsageError(f"{where}: options must map dataset option names (without 'dataset.') to values")
    switches = _switches(raw.get("switches") or {}, where, "switches")
    setting = PaperSetting(classes, _text(raw["training"], "training", where), _text(raw["selection"], "selection", where),
                           _text(raw.get("split", ""), "split", where, required=False), name)
    return (setting, _text(raw["dataset"], "dataset", where), _text(raw["protocol"], "protocol", where, required=False),
            dict(options), switches)


def _switches(raw: Any, where: str, name: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where}: {name} must be a mapping of dotted keys, e.g. train.selection: test")
    for key, value in raw.items():
        if not isinstance(key, str) or "." not in key or any(not part for part in key.split(".")):
            raise UsageError(f"{where}: {name} key {key!r} must be a dotted ferbench key such as train.selection")
        if key.startswith("dataset."):
            raise UsageError(f"{where}: {name} key {key!r}: dataset options belong to the setting's options")
        if isinstance(value, Mapping):
            raise UsageError(f"{where}: {name} value of {key} must be a single value or a list, not a mapping")
    return dict(raw)


def _table(raw: Any, sources: Mapping[str, dict[str, str]], settings: Mapping[str, Any], where: str) -> list[PaperResult]:
    _keys(raw, _TABLE, where)
    source_key = _text(raw["source"], "source", where)
    if source_key not in sources:
        raise UsageError(f"{where}: source {source_key!r} is not among the sources ({', '.join(sources) or 'none'})")
    table = _text(raw["table"], "table", where)
    where = f"{where} ({source_key} {table})"
    metric = _text(raw["metric"], "metric", where)
    if metric not in RANKED_METRICS:
        raise UsageError(f"{where}: metric {metric!r} is not a ranked metric (published numbers are compared on "
                         f"those); choose one of: {', '.join(RANKED_METRICS)}")
    columns = raw["columns"]
    if not isinstance(columns, list) or not columns or any(column not in settings for column in columns):
        unknown = [c for c in columns if c not in settings] if isinstance(columns, list) else columns
        raise UsageError(f"{where}: columns must be a non-empty list of setting names; unknown: {unknown!r}")
    if not isinstance(raw["rows"], list) or not raw["rows"]:
        raise UsageError(f"{where}: rows must be a non-empty list of rows")
    context = {"source": sources[source_key], "table": table, "metric": metric}
    return [result for index, row in enumerate(raw["rows"])
            for result in _rows(row, [settings[c] for c in columns], context, f"{where} rows[{index}]")]


def _rows(raw: Any, columns: list[Any], context: Mapping[str, Any], where: str) -> list[PaperResult]:
    _keys(raw, _ROW, where)
    name = _text(raw["method"], "method", where)
    where = f"{where} ({name})"
    values = raw["values"]
    if not isinstance(values, list) or len(values) != len(columns):
        raise UsageError(f"{where}: values must be a list of {len(columns)} numbers (one per column, null where the "
                         f"paper prints '-'), got {values!r}")
    variant = _text(raw.get("variant", ""), "variant", where, required=False)
    cited = _text(raw.get("cited", ""), "cited", where, required=False)
    results = []
    for value, (setting, dataset, protocol, options, switches) in zip(values, columns):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise UsageError(f"{where}: value {value!r} must be a number of percent in [0, 100] (or null)")
        reproduce = _reproduction(raw["reproduce"], switches, where) if raw.get("reproduce") is not None else None
        results.append(PaperResult(name=name, dataset=dataset, protocol=protocol, setting=setting,
                                   metric=context["metric"], value=float(value), source=context["source"]["title"],
                                   table=context["table"], variant=variant, options=options, reproduce=reproduce,
                                   cited=cited, document=context["source"]["document"]))
    return results


def _reproduction(raw: Any, setting_switches: Mapping[str, Any], where: str) -> Reproduction:
    where = f"{where} reproduce"
    _keys(raw, _REPRODUCE, where)
    own = _switches(raw.get("set") or {}, where, "set")
    pretrain = None
    if raw.get("pretrain") is not None:
        _keys(raw["pretrain"], _PRETRAIN, f"{where} pretrain")
        pretrain = Pretraining(*(_text(raw["pretrain"][key], f"pretrain.{key}", where) for key in _PRETRAIN[0]))
    return Reproduction(_text(raw["method"], "method", where), _text(raw["preset"], "preset", where),
                        {**setting_switches, **own}, pretrain)


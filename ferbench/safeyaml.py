"""YAML written by users (config files, ``--set`` values, published-results tables), read with limits.

``yaml.safe_load`` never runs code, but a small file can still cost minutes and gigabytes: aliases
share one object, so nine levels of ten aliases each load instantly as a billion-element tree that a
later deep copy or JSON dump expands for real. Files are therefore capped in size, documents in alias
count, nesting depth and values once aliases are expanded; and a file must be UTF-8 (or UTF-16 with a
byte-order mark, which YAML allows), so a binary file gets one line instead of a decoding traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError

#: Largest YAML file read (a config file is a few hundred bytes; the shipped results table ~20 kB).
MAX_BYTES = 1 << 20
#: Most aliases (``*name``) one document may use.
MAX_ALIASES = 100
#: Most values (scalars, lists and mappings) a document may hold once its aliases are expanded.
MAX_VALUES = 100_000
#: Deepest nesting of lists and mappings.
MAX_DEPTH = 64

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


class _CappedLoader(yaml.SafeLoader):
    """``SafeLoader`` that stops at the :data:`MAX_ALIASES`-th alias and :data:`MAX_DEPTH`-th level."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooLarge(f"uses more than {MAX_ALIASES} YAML aliases (*name)")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooLarge(f"nests lists or mappings more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _TooLarge(Exception):
    """A document over one of the limits (the message says which)."""


def load_yaml(text: str, where: str) -> Any:
    """The YAML document ``text``; a one-line UsageError naming ``where`` when it is malformed or over
    the limits."""
    loader = _CappedLoader(text)
    try:
        data = loader.get_single_data()
    except _TooLarge as exc:
        raise UsageError(f"{where} {exc}; write the values out plainly") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UsageError(f"{where} is not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
    finally:
        loader.dispose()
    if _count_values(data) > MAX_VALUES:
        raise UsageError(f"{where} expands to more than {MAX_VALUES} values (through YAML aliases?); "
                         "write the values out plainly")
    return data


def read_yaml_file(path: str | Path, what: str) -> Any:
    """The YAML document in file ``path``; ``what`` (e.g. ``config file``) names it in one-line errors."""
    where = f"{what} {str(path)!r}"
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {where}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise UsageError(f"{where} is larger than {MAX_BYTES >> 20} MiB; is it the right file?")
    return load_yaml(_decode(raw, where), where)


def _decode(raw: bytes, where: str) -> str:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                break
    else:
        if b"\0" not in raw:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"{where} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    raise UsageError(f"{where} is a binary file, not YAML text; pass a YAML file saved as UTF-8")


def _count_values(data: Any) -> int:
    """Values in ``data`` with shared (aliased) parts counted each time they occur, stopping just past
    :data:`MAX_VALUES` so that an alias bomb costs no more than that."""
    count, stack = 0, [data]
    while stack and count <= MAX_VALUES:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return count

"""Declared limits of config settings beyond their type: ranges, list lengths and order, divisors, names.

The engine declares one :class:`Constraint` per setting next to its defaults
(:data:`ferbench.config.ENGINE_CONSTRAINTS`, :data:`~ferbench.config.OPTIM_CONSTRAINTS`); a method
declares its own in ``MethodSpec.constraints`` and a loss in ``LossSpec.constraints``. The config is
checked once, when it is built, so an impossible value fails in one line before any data loads.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import UsageError

#: Divisors listed in an error message at most.
_MAX_LISTED = 24


@dataclass(frozen=True)
class Constraint:
    """What one setting accepts.

    ``low``/``high`` bound a number, or each element of a list (``low_open``/``high_open`` exclude the
    bound); ``lengths`` are the allowed list lengths (empty: any); ``ascending`` asks for list elements
    in non-decreasing order (``[low, high]`` ranges, milestones); ``divides`` names (dotted path) an
    integer setting the value must divide (a ViT's heads divide its width); ``pattern`` is a regular
    expression a string must match in full, described by ``hint`` in errors.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    lengths: tuple[int, ...] = ()
    ascending: bool = False
    divides: str | None = None
    pattern: str | None = None
    hint: str = ""

    def describe_range(self) -> str:
        """The numeric range in words: ``in [0, 1]``, ``in (0, 10]``, ``>= 1``, ``> 0`` (``""`` if none)."""
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{_number(self.low)}, "
                    f"{_number(self.high)}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return ""

    def check(self, path: str, value: Any, flat_config: Mapping[str, Any]) -> None:
        """Raise a one-line UsageError when ``value`` (already of the right type) breaks the constraint;
        ``flat_config`` (dotted path -> value) resolves :attr:`divides`."""
        if isinstance(value, list):
            self._check_list(path, value)
        elif isinstance(value, str):
            self._check_name(path, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if not self._in_range(value):
                raise UsageError(f"invalid value {value!r} for {path}: expected "
                                 f"{'an integer' if isinstance(value, int) else 'a number'} {self.describe_range()}")
            self._check_divides(path, value, flat_config)

    def _in_range(self, number: float) -> bool:
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            return False
        return self.high is None or not (number > self.high or (self.high_open and number == self.high))

    def _check_list(self, path: str, values: list[Any]) -> None:
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        broken = ((self.lengths and len(values) not in self.lengths)
                  or not all(self._in_range(v) for v in numbers)
                  or (self.ascending and numbers != sorted(numbers)))
        if broken:
            raise UsageError(f"invalid value {values!r} for {path}: expected {self._describe_list()}")

    def _describe_list(self) -> str:
        count = " or ".join(map(str, self.lengths)) if self.lengths else "any number of"
        parts = [f"a list of {count} values"]
        if self.describe_range():
            parts.append(f"each {self.describe_range()}")
        if self.ascending:
            parts.append("in ascending order")
        return ", ".join(parts)

    def _check_name(self, path: str, value: str) -> None:
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise UsageError(f"invalid value {value!r} for {path}: expected "
                             f"{self.hint or f'a value matching {self.pattern}'}")

    def _check_divides(self, path: str, value: float, flat_config: Mapping[str, Any]) -> None:
        total = flat_config.get(self.divides) if self.divides else None
        if not isinstance(total, int) or isinstance(total, bool) or not isinstance(value, int) or value <= 0:
            return
        if total % value:
            divisors = [d for d in range(1, min(total, 10**6) + 1) if total % d == 0 and self._in_range(d)]
            listed = ", ".join(map(str, divisors[:_MAX_LISTED])) + (", ..." if len(divisors) > _MAX_LISTED else "")
            raise UsageError(f"invalid value {value} for {path}: it must divide {self.divides} = {total}; "
                             f"choose one of: {listed}")


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


#: Common declarations.
PROBABILITY = Constraint(low=0.0, high=1.0)
NON_NEGATIVE = Constraint(low=0)
POSITIVE = Constraint(low=0, low_open=True)


def check_constraints(flat_config: Mapping[str, Any], constraints: Mapping[str, Constraint]) -> None:
    """Check every setting of ``flat_config`` (dotted path -> value) that has a constraint; settings
    absent from the config or set to None are left alone."""
    for path, constraint in constraints.items():
        value = flat_config.get(path)
        if value is not None:
            constraint.check(path, value, flat_config)

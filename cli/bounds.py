"""The allowed range of every numeric setting of every command, checked in one place.

A threshold of nan compares false with everything, so `auc < nan` never refuses and a gate set
to nan is silently off; a negative count or an absurd size fails later, far from its flag. So
each numeric setting names its Range: command-line flags parse through it (`Range.parse` as the
argparse type), and settings from elsewhere (Airflow Variables, a config built in code) are
checked with `Range.problem`. Either way the answer is one line naming the setting, the value
and the allowed range. `numeric_without_range` lets a test (and the parsers) find a numeric
setting that forgot its Range.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from dataclasses import dataclass

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Range:
    """Finite numbers from low to high (low excluded when `above` is set)."""

    low: float
    high: float
    integer: bool = False
    above: bool = False  # low itself is not allowed: (low, high]
    meaning: str = ""  # what the number is, e.g. "an AUC"

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        low, high = _show(self.low), _show(self.high)
        span = f"above {low} and at most {high}" if self.above else f"from {low} to {high}"
        return f"{kind} {span}" + (f" ({self.meaning})" if self.meaning else "")

    def problem(self, value: object, as_given: str | None = None) -> str | None:
        """Why `value` is not allowed (the setting's name is the caller's), or None;
        `as_given` is the text the user typed, shown instead of the parsed value."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {self.describe()}, not {value!r}"
        if self.integer and not isinstance(value, int):
            return f"must be {self.describe()}, not {as_given or value}"
        inside = self.low < value if self.above else self.low <= value
        if math.isnan(value) or not (inside and value <= self.high):  # nan fails every comparison
            return f"must be {self.describe()}, not {as_given or _show(value)}"
        return None

    def parse(self, text: str) -> int | float:
        """The value of a flag's text; argparse shows the error as `argument --flag: ...`."""
        try:
            value: int | float = int(text) if self.integer else float(text)
        except ValueError:
            shown = text.strip() or repr(text)
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, not {shown}") from None
        if problem := self.problem(value, text.strip()):
            raise argparse.ArgumentTypeError(problem)
        return value

    def convert(self, name: str, text: str) -> int | float:
        """parse() for settings that are not flags: ValueError('NAME must be ...')."""
        try:
            return self.parse(text)
        except argparse.ArgumentTypeError as error:
            raise ValueError(f"{name} {error}") from None


def _show(value: float) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:,}" if abs(value) >= 10_000 else f"{value:g}"


# Shared shapes of setting.
def count(low: int = 1, high: int = 10**9, meaning: str = "") -> Range:
    return Range(low, high, integer=True, meaning=meaning)


def fraction(meaning: str = "", above: bool = False) -> Range:
    return Range(0.0, 1.0, above=above, meaning=meaning)


def seconds(high: float = 86_400.0, above: bool = False) -> Range:
    return Range(0.0, high, above=above, meaning="seconds")


PORT = Range(1, 65_535, integer=True, meaning="a TCP port")
PORT_OR_OFF = Range(0, 65_535, integer=True, meaning="a TCP port; 0 turns it off")
SEED = Range(0, 2**31 - 1, integer=True, meaning="a random seed")
ARTIFACT_ID = Range(1, INT64_MAX, integer=True, meaning="an MLMD id")


def add_number(group, *flags: str, bounds: Range, **kwargs) -> argparse.Action:
    """parser.add_argument for a number, parsed and checked by its Range."""
    return group.add_argument(*flags, type=bounds.parse, **kwargs)


def numeric_without_range(parser: argparse.ArgumentParser) -> list[str]:
    """Flags of a parser (and its subcommands) that take a bare int or float: each needs a Range."""
    missing = []
    for action in _actions(parser):
        if action.type in (int, float):
            missing.append("/".join(action.option_strings) or action.dest)
    return missing


def ranged_actions(parser: argparse.ArgumentParser) -> list[tuple[argparse.Action, Range]]:
    """Every flag of a parser (and its subcommands) parsed through a Range, with the Range."""
    return [
        (action, action.type.__self__)
        for action in _actions(parser)
        if isinstance(getattr(action.type, "__self__", None), Range)
    ]


def _actions(parser: argparse.ArgumentParser) -> Iterable[argparse.Action]:
    for action in parser._actions:  # noqa: SLF001 (argparse has no public list)
        yield action
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                yield from _actions(sub)

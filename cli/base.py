"""What every command module shares: the command-group type and small output helpers."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lighting.settings import Settings

SubParsers = Any  # argparse's _SubParsersAction, private in typeshed
CommandGroup = Callable[[SubParsers], None]
"""Adds sub-commands to the root parser; each sets `run=<Command>` as its default."""

Command = Callable[[argparse.Namespace, Settings], int]
"""Runs one command with its parsed arguments and the settings; returns the exit status."""


def info(message: str) -> None:
    """A diagnostic line: stderr, so stdout stays the command's result (JSON stays JSON)."""
    print(message, file=sys.stderr, flush=True)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 spike`, `2 spikes`, `0 faults`; `nouns` for an irregular plural."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


TIME_SUFFIX = "_ms"


def time_column(name: str) -> str:
    """A table header for a time field: `started_at_ms` holds ISO times in a table, so its
    header drops the unit (`started_at`); `--format json` keeps the name and the raw ms."""
    return name.removesuffix(TIME_SUFFIX) if name.endswith(TIME_SUFFIX) else name


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, trailing blanks trimmed."""
    body = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in body) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(line.rstrip() for line in lines)


def nearby(wanted: str, known: Iterable[str], most: int = 5) -> list[str]:
    """`most` ids of `known` (all of them, sorted, if there are no more): those spelt most
    like `wanted` first, then the others in order."""
    ids = sorted(set(known))
    if len(ids) <= most:
        return ids
    close = difflib.get_close_matches(wanted, ids, n=most, cutoff=0.5)
    return [*close, *(i for i in ids if i not in close)][:most]


def listing(ids: Sequence[str], total: int) -> str:
    """`a, b, c` or `a, b, c (of 12)` when only some of `total` are shown."""
    shown = ", ".join(ids) if ids else "none"
    return shown if len(ids) >= total else f"{shown} (of {total})"

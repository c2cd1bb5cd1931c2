"""What every command module shares: the command-group type and small output helpers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
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

"""luxflow's composition root: the only place that reads the environment.

`main()` reads the settings (LUXFLOW_* variables) and hands them, with the command groups,
to the CLI. The runtime groups are always there; the development groups (demo, evaluate,
simulate, bench) are added when their packages are installed, which they are in a checkout
and never in the runtime image. Nothing imports this module.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from cli.base import CommandGroup, SubParsers
from cli.main import run


def _group(module: str) -> CommandGroup:
    """The command group of `cli.<module>`, imported when the parser is built: a process
    imports the modules of the commands it may run, no others."""

    def register(sub: SubParsers) -> None:
        importlib.import_module(f"cli.{module}").register(sub)

    return register


KCL_PROCESSOR = _group("kcl_processor")

RUNTIME_COMMANDS: tuple[CommandGroup, ...] = (
    _group("worker"),
    KCL_PROCESSOR,
    _group("admin"),
    _group("replay"),
    _group("query"),
    _group("serve"),
    _group("status"),
    _group("dr"),
)


def development_commands() -> list[CommandGroup]:
    """The command groups of the development tooling, if it is installed."""
    groups: list[CommandGroup] = []
    try:
        from sim import commands as sim_commands
    except ModuleNotFoundError:
        return groups
    groups.append(sim_commands.register)
    try:
        from benchmarks import cli as bench_cli
    except ModuleNotFoundError:
        return groups
    groups.append(bench_cli.register)
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    # The KCL daemon starts one processor per leased shard: keep its footprint to what it runs.
    if args[:1] == ["kcl-processor"]:
        return run(args, os.environ, [KCL_PROCESSOR])
    return run(args, os.environ, [*RUNTIME_COMMANDS, *development_commands()])


if __name__ == "__main__":
    sys.exit(main())

"""The command line as a careful user meets it: help for every option, one-line errors."""

from __future__ import annotations

import argparse

import pytest

from app import RUNTIME_COMMANDS, development_commands
from cli.main import EXIT_USAGE, build_parser, run
from cli.worker import idle_stop_warning


def all_parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += all_parsers(child)
    return found


def test_every_option_of_every_command_has_help_text() -> None:
    root = build_parser([*RUNTIME_COMMANDS, *development_commands()])
    missing = [
        f"{prog} {'/'.join(action.option_strings) or action.dest}"
        for prog, parser in all_parsers(root)
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
        and not action.help
    ]
    assert missing == []
    commands = {prog.split()[-1] for prog, _ in all_parsers(root)}
    assert {"worker", "setup", "replay", "demo", "evaluate", "bench", "deadletters"} <= commands


def test_a_bad_log_level_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(["config"], {"LUXFLOW_LOG_LEVEL": "LOUD"}, RUNTIME_COMMANDS)
    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert err.count("\n") == 1
    assert "LUXFLOW_LOG_LEVEL" in err and "LOUD" in err


def test_a_bad_setting_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(["config"], {"LUXFLOW_CHECKPOINT_INTERVAL_MS": "soon"}, RUNTIME_COMMANDS)
    assert status == EXIT_USAGE
    assert "LUXFLOW_CHECKPOINT_INTERVAL_MS='soon' is not a valid int" in capsys.readouterr().err


def test_stop_when_idle_shorter_than_the_idle_timeout_warns() -> None:
    warning = idle_stop_warning(30, 60_000)
    assert warning is not None
    assert "--stop-when-idle-s 30" in warning and "LUXFLOW_IDLE_TIMEOUT_MS=60000" in warning
    assert idle_stop_warning(61, 60_000) is None
    assert idle_stop_warning(0, 60_000) is None  # no idle stop at all


def test_config_prints_every_setting_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "--markdown"], {}, RUNTIME_COMMANDS) == 0
    out = capsys.readouterr().out
    assert "| `LUXFLOW_STREAM` | `'luxflow-telemetry'` |" in out

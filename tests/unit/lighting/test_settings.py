"""The README's settings table is the one lighting/settings.py declares."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from core.errors import ConfigError
from lighting.settings import Settings, settings_table
from lighting.wiring import engine_config

ROOT = Path(__file__).resolve().parents[3]


def readme_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "readme_settings", ROOT / "scripts" / "readme_settings.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_settings_table_is_the_one_the_settings_declare() -> None:
    readme = (ROOT / "README.md").read_text()
    written = readme_script().with_table(readme, settings_table())
    assert written == readme, (
        "README.md's settings table is out of date: run scripts/readme_settings.py"
    )


def test_the_snapshot_format_reaches_the_engine_and_a_bad_one_is_one_line() -> None:
    assert engine_config(Settings.from_env({})).snapshot_format == 3
    assert engine_config(Settings.from_env({"LUXFLOW_SNAPSHOT_FORMAT": "2"})).snapshot_format == 2
    with pytest.raises(ConfigError, match=r"^LUXFLOW_SNAPSHOT_FORMAT must be 2 or 3, not 4$"):
        Settings.from_env({"LUXFLOW_SNAPSHOT_FORMAT": "4"})

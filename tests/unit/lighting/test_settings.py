"""The README's settings table is the one lighting/settings.py declares."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from lighting.settings import settings_table

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

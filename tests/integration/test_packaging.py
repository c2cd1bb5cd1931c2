"""The package as it ships: built as a wheel from what the runtime image copies (the
Dockerfile's COPY lines), installed into a fresh venv, every runtime module imported."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_PACKAGES = {"sim", "emulators", "benchmarks", "tests"}

pytestmark = pytest.mark.packaging


def runtime_sources() -> list[str]:
    """What the Dockerfile's Python stage copies into its build context."""
    text = (ROOT / "Dockerfile").read_text()
    stage = text[text.index("AS python") : text.index("RUN /app/.venv/bin/pip install")]
    return [m.group(1) for m in re.finditer(r"^COPY (\S+) \S+$", stage, re.M)] + ["pyproject.toml"]


def test_the_image_copies_every_runtime_package_and_no_dev_tooling() -> None:
    copied = {Path(s).name for s in runtime_sources()}
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages - copied == DEV_PACKAGES
    assert not copied & DEV_PACKAGES


def test_wheel_of_the_runtime_installs_and_imports_everywhere(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in runtime_sources():
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.exists():
            shutil.copy2(path, context / source)
    shutil.copy2(ROOT / "README.md", context / "README.md")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(context)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("luxflow-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    packages = {t for t in tops if not t.endswith((".dist-info", ".py"))}
    assert packages == {"core", "domain", "streams", "tables", "sinks", "lighting", "cli", "api"}

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=600)
    script = (
        "import importlib, pkgutil\n"
        "names = ['app']\n"
        f"for top in {sorted(packages)!r}:\n"
        "    pkg = importlib.import_module(top)\n"
        "    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, top + '.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    imported = subprocess.run(
        [str(python), "-c", script], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    assert int(imported.stdout) > 40
    helped = subprocess.run(
        [
            str(
                env_dir / "bin" / "luxflow",
            ),
            "--help",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "worker" in helped.stdout and "kcl-processor" in helped.stdout
    # The development commands are not there without the development packages.
    assert "demo" not in helped.stdout and "bench" not in helped.stdout

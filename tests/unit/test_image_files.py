"""The image's inputs agree with each other: requirements.lock pins (with hashes) what
pyproject.toml declares, the Dockerfile installs from it, and the Dockerfile's health check and
command are the ones the CDK app (infra/lib/worker.ts) gives the ECS task. The image itself is
built and smoke-tested by `./dev image` (scripts/image.sh)."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def locked() -> dict[str, tuple[Version, list[str]]]:
    """requirements.lock as {name: (version, sha256 hashes)}."""
    text = (ROOT / "requirements.lock").read_text()
    pins: dict[str, tuple[Version, list[str]]] = {}
    # One requirement per logical line: `name==version \` followed by `--hash=sha256:...`.
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        if head:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)
            pins[canonicalize_name(head.group(1))] = (Version(head.group(2)), hashes)
    return pins


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared(key: str) -> list[Requirement]:
    data = pyproject()
    section = data["project"] if key == "dependencies" else data["build-system"]
    assert isinstance(section, dict)
    return [Requirement(r) for r in section[key if key == "dependencies" else "requires"]]


def test_the_lock_pins_every_runtime_dependency_and_the_build_backend() -> None:
    pins = locked()
    for requirement in [*declared("dependencies"), *declared("build-system")]:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared in pyproject.toml but not locked: ./dev lock"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"locked {name}=={version} does not satisfy {requirement}: ./dev lock"
        )


def test_every_locked_package_has_a_hash() -> None:
    pins = locked()
    assert {"boto3", "botocore", "msgspec", "setuptools"} <= set(pins)
    assert [name for name, (_, hashes) in pins.items() if not hashes] == []


def test_every_third_party_import_of_the_runtime_is_declared() -> None:
    """A runtime module that imports an undeclared package breaks the image (orjson did once:
    dropped from pyproject while the metrics writer imported it)."""
    import ast

    runtime = ["core", "domain", "streams", "tables", "sinks", "lighting", "cli", "api"]
    ours = {*runtime, "app", "sim", "emulators", "benchmarks", "tests"}
    imported: set[str] = set()
    for package in runtime:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            type_only = {
                id(child)
                for node in ast.walk(tree)
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                for child in ast.walk(node)
            }
            for node in ast.walk(tree):
                if id(node) in type_only:
                    continue
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module.split(".")[0])
    third_party = {name for name in imported - ours if name not in sys.stdlib_module_names}
    declared_names = {canonicalize_name(r.name) for r in declared("dependencies")}
    # Import names that differ from their distribution names.
    # urllib3: botocore's HTTP layer, whose exception types the retry policy names.
    provided_by = {
        "botocore": "boto3",
        "urllib3": "boto3",
        "prometheus_client": "prometheus-client",
    }
    missing = {
        name
        for name in third_party
        if canonicalize_name(provided_by.get(name, name)) not in declared_names
    }
    assert missing == set()
    assert third_party <= {canonicalize_name(n).replace("-", "_") for n in locked()} | {
        "prometheus_client"
    }


def test_the_dockerfile_installs_the_lock_with_hashes_then_luxflow_without_deps() -> None:
    assert "COPY requirements.lock ./" in DOCKERFILE
    assert re.search(r"pip install .*--require-hashes -r requirements\.lock", DOCKERFILE)
    assert re.search(r"pip install .*--no-deps --no-build-isolation \.$", DOCKERFILE, re.M)


def test_the_base_images_are_build_arguments_with_upstream_defaults() -> None:
    args = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", DOCKERFILE, re.M))
    assert args == {
        "PYTHON_IMAGE": "python:3.11-slim-bookworm",
        "JRE_IMAGE": "eclipse-temurin:17-jre",
        "MAVEN_IMAGE": "maven:3.9-eclipse-temurin-17",
    }
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert stages == ["${MAVEN_IMAGE}", "${JRE_IMAGE}", "${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    # COPY --from names stages only (a build argument there is not expanded).
    assert set(re.findall(r"--from=(\S+)", DOCKERFILE)) == {"jre", "python", "jars"}


def ts_string_array(source: str, constant: str) -> list[str]:
    match = re.search(rf"export const {constant}: readonly string\[\] = (\[.*?\]);", source, re.S)
    assert match, f"{constant} not found in infra/lib/worker.ts"
    parsed = json.loads(match.group(1).replace("'", '"'))
    assert isinstance(parsed, list)
    return [str(item) for item in parsed]


def test_health_check_and_command_equal_the_ecs_task_definition() -> None:
    worker_ts = (ROOT / "infra" / "lib" / "worker.ts").read_text()
    healthchecks = re.findall(r"^HEALTHCHECK .*$", DOCKERFILE, re.M)
    assert len(healthchecks) == 1, "keep the HEALTHCHECK on one line"
    (healthcheck,) = healthchecks
    health_cmd = json.loads(healthcheck[healthcheck.index(" CMD ") + 5 :])
    assert ["CMD", *health_cmd] == ts_string_array(worker_ts, "HEALTH_CHECK_COMMAND")
    (cmd,) = re.findall(r"^CMD (\[.*\])$", DOCKERFILE, re.M)
    assert json.loads(cmd) == ts_string_array(worker_ts, "WORKER_COMMAND")


def test_the_build_context_allows_every_copied_source() -> None:
    """.dockerignore is an allowlist: a COPY of a path it leaves out fails the build."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    sources = [
        source
        for line in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.M)
        for source in line.split()
    ]
    assert "requirements.lock" in sources
    missing = [s for s in sources if s.replace("README.m[d]", "README.md") not in allowed]
    assert missing == []
    for path in allowed:
        assert (ROOT / path).exists(), f".dockerignore allows {path}, which does not exist"

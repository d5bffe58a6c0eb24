"""Developer tooling: version, pre-commit config, CI workflows, and the constraints file they install with."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import mmfuse
from mmfuse.main import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not `name==version`"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _workflow(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


def _run_lines(workflow: dict[str, Any]) -> list[str]:
    return [
        line
        for job in workflow["jobs"].values()
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
    ]


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    assert mmfuse.__version__ == PYPROJECT["project"]["version"]
    main(["--version"])
    assert capsys.readouterr().out.strip() == f"mmfuse {mmfuse.__version__}"


def test_changelog_has_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{mmfuse.__version__}]" in changelog and "## [Unreleased]" in changelog


def test_pre_commit_config_is_valid_and_has_the_hooks() -> None:
    config = ROOT / ".pre-commit-config.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    hooks = {hook["id"] for repo in yaml.safe_load(config.read_text())["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "nbstripout", "trailing-whitespace", "end-of-file-fixer"} <= hooks


def test_constraints_pin_every_dependency_within_what_pyproject_allows() -> None:
    pins = _pins()
    project = PYPROJECT["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"constraints.txt has no pin for {requirement.name}: run scripts/update_constraints.py"
        )
        # a pin outside pyproject's range makes `pip install -c constraints.txt` fail to resolve
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {line}"
    assert "mmfuse" not in pins  # the project itself is installed from the tree, never pinned
    ci_torch = re.search(r"torch==([\w.]+)", (ROOT / ".ci" / "run").read_text())
    assert ci_torch is not None and pins["torch"] == Version(ci_torch.group(1))


def test_ci_installs_with_the_constraints_and_the_drift_job_without() -> None:
    assert '-c constraints.txt -e ".[dev,graph]"' in (ROOT / ".ci" / "run").read_text()
    ci = _workflow("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    assert any("-c constraints.txt" in line for line in _run_lines(ci))

    drift = _workflow("drift.yml")
    assert drift["on"]["schedule"][0]["cron"]  # weekly, on a schedule
    lines = _run_lines(drift)
    assert not any("constraints" in line for line in lines)
    assert any("pip install --upgrade torch" in line for line in lines)  # the newest torch, not the pin
    for workflow in (ci, drift):
        run = "\n".join(_run_lines(workflow))
        for command in ("ruff check .", "ruff format --check .", "mypy src", "pytest"):
            assert command in run

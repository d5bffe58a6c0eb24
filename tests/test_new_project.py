"""scripts/new_project.py: a renamed copy of the template installs, runs and passes its own tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAME = "acme_vision"
# a representative subset of the renamed project's tests: every config (class paths), the fusers,
# the manifest, an end-to-end fit through the renamed command, the version and the tooling
SUBSET = [
    "tests/test_tooling.py",
    "tests/models/test_fusion.py",
    "tests/data/test_manifest.py",
    "tests/test_cli.py::test_every_config_parses",
    "tests/test_cli.py::test_fit_then_test_writes_metrics",
    "tests/test_cli_errors.py::test_fit_help_lists_only_the_projects_encoders_in_whole_sentences",
]


def _project_files() -> list[str]:
    """What a clone holds: git's files (tracked, or new and not ignored), else the tree without outputs."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return [p for p in listed.split("\0") if p and (ROOT / p).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        sys.path.insert(0, str(ROOT / "scripts"))
        from new_project import project_files

        return [str(p.relative_to(ROOT)) for p in project_files(ROOT)]


def _copy_project(dest: Path) -> Path:
    for rel in _project_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest


def _files_mentioning(root: Path, word: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            lines = [line for line in text.splitlines() if re.search(word, line, re.IGNORECASE)]
            if lines:
                found[str(path.relative_to(root))] = lines
    return found


@pytest.mark.slow
def test_renamed_project_installs_and_passes_its_tests(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "project")
    script = [sys.executable, str(project / "scripts" / "new_project.py")]
    done = subprocess.run([*script, NAME, "--reset-configs"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"renamed mmfuse -> {NAME}" in done.stdout

    # the package, its imports, command, configs' class paths, pyproject and README are the new name's
    assert (project / "src" / NAME / "main.py").is_file() and not (project / "src" / "mmfuse").exists()
    pyproject = (project / "pyproject.toml").read_text()
    assert f'name = "{NAME}"' in pyproject and f'{NAME} = "{NAME}.main:main"' in pyproject
    assert 'version = "0.1.0"' in pyproject
    assert (project / "README.md").read_text().startswith(f"# {NAME}\n\nStarted from the mmfuse template")
    assert (
        f"class_path: {NAME}.models.fusion.CrossModalAttentionFusion"
        in (project / "configs" / "quickstart.yaml").read_text()
    )
    own = (project / "configs" / f"{NAME}.yaml").read_text()
    assert f"path: data/{NAME}/manifest.csv" in own and f"default_root_dir: runs/{NAME}" in own
    # the old name survives only where it says where the project came from
    left = _files_mentioning(project, "mmfuse")
    assert set(left) == {"README.md", "CHANGELOG.md"}, left
    assert all("mmfuse template" in line for lines in left.values() for line in lines), left

    # the same name twice, or a name that is not an identifier, is refused
    for bad in (NAME, "Acme-Vision"):
        refused = subprocess.run([*script, bad], capture_output=True, text=True)
        assert refused.returncode != 0 and refused.stderr.strip()

    # install it into a fresh environment that sees this one's packages but not mmfuse: offline, no deps
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # a .pth's lines are added to sys.path as they are; the .pth files there (mmfuse's install) are not read
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "parent_env.pth").write_text("\n".join(paths) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", "."]
    done = subprocess.run(install, cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    done = subprocess.run([str(venv / "bin" / NAME), "--version"], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == f"{NAME} 0.1.0", done.stderr
    done = subprocess.run([str(python), "-c", "import mmfuse"], cwd=tmp_path, env=env, capture_output=True)
    assert done.returncode != 0  # the renamed project does not lean on the template's package

    # -n 0: no workers of its own (the suite's worker running this test is one of two already)
    tests = [str(python), "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider", *SUBSET]
    done = subprocess.run(tests, cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout) and " failed" not in done.stdout

"""Start a new project from this template: rename the package everywhere, in place.

    python scripts/new_project.py acme_vision                  # package, imports, command, configs
    python scripts/new_project.py acme_vision --reset-configs  # ... and configs/acme_vision.yaml
    pip uninstall -y mmfuse && pip install -e ".[dev,graph]" && pytest

Run it once, in a fresh clone, from anywhere. It renames ``src/<package>/`` to ``src/NAME/`` and replaces
the package name as a word (and its upper-case form, as in environment variables) in every text file
of the project: imports, the console script (``NAME fit ...``), class paths in configs, pyproject.toml,
README.md (title included), docs, notebooks, tests, benchmarks and scripts. CHANGELOG.md starts over at
0.1.0. In a git checkout the files are git's (tracked or not ignored); elsewhere every file except
virtual environments, caches, runs and datasets. Nothing is committed: review with ``git status``.

``--reset-configs`` writes ``configs/NAME.yaml``, a copy of ``configs/manifest_example.yaml`` that reads
``data/NAME/manifest.csv`` and writes runs to ``runs/NAME``: the config to start your data from. The
quickstart configs stay, because the tests train on them.
"""

from __future__ import annotations

import argparse
import keyword
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# never rewritten when walking a tree that is not a git checkout: environments, caches, outputs, data
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "node_modules"}
#: run outputs, skipped at the top level only: the package has a `lit/wandb/` of its own
OUTPUT_DIRS = {"runs", "wandb", "lightning_logs"}
SKIP_DIRS |= {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".ipynb_checkpoints"}


def current_package(root: Path) -> str:
    """The one package under ``src/`` (the template's own name, or the name of an earlier rename)."""
    packages = sorted(init.parent.name for init in (root / "src").glob("*/__init__.py"))
    if len(packages) != 1:
        raise SystemExit(f"{root / 'src'}: expected exactly one package, found {packages or 'none'}")
    return packages[0]


def check_name(name: str, old: str, root: Path) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise SystemExit(f"{name!r}: use a lower-case Python identifier, e.g. acme_vision")
    if name == old:
        raise SystemExit(f"the package is already called {name!r}")
    if (root / "src" / name).exists():
        raise SystemExit(f"{root / 'src' / name} exists already")
    if find_spec(name) is not None:  # `import NAME` would be ambiguous (e.g. `torch`, `test`)
        raise SystemExit(f"{name!r} is the name of an installed module: choose another")


def project_files(root: Path) -> Iterator[Path]:
    """The project's files: git's (tracked, or untracked and not ignored) in a checkout, else a walk."""
    if (root / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        yield from (root / p for p in sorted(set(listed.split("\0"))) if p and (root / p).is_file())
        return
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p in SKIP_DIRS or p.endswith(".egg-info") for p in parts) or not path.is_file():
            continue
        if parts[0] in OUTPUT_DIRS:
            continue
        if parts[0] == "data" and parts[1:] != ("README.md",):
            continue  # datasets; data/README.md is the project's
        yield path


def rename_text(text: str, old: str, new: str) -> str:
    """Replace ``old`` where it is a whole word (``_`` counts as a separator: ``_mmfuse`` is renamed)."""
    for before, after in ((old, new), (old.upper(), new.upper())):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(before)}(?![A-Za-z0-9])", after, text)
    return text


def rewrite(root: Path, old: str, new: str) -> list[Path]:
    changed = []
    for path in project_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files (images, checkpoints) have no names to change
        renamed = rename_text(text, old, new)
        if renamed != text:
            path.write_text(renamed, encoding="utf-8")
            changed.append(path)
    return changed


def reset_changelog(root: Path, old: str, new: str, template_version: str) -> None:
    (root / "CHANGELOG.md").write_text(
        "# Changelog\n\n"
        f"What changed in {new}, newest first ([Keep a Changelog](https://keepachangelog.com/en/1.1.0/)).\n\n"
        "## [Unreleased]\n\n"
        "## [0.1.0]\n\n"
        "### Added\n\n"
        f"- Started from the {old} template, version {template_version}.\n"
    )


def set_version(root: Path, version: str) -> None:
    pyproject = root / "pyproject.toml"
    text = re.sub(r'(?m)^version = "[^"]*"', f'version = "{version}"', pyproject.read_text(), count=1)
    pyproject.write_text(text)


def template_version(root: Path) -> str:
    found = re.search(r'(?m)^version = "([^"]*)"', (root / "pyproject.toml").read_text())
    return found.group(1) if found else "unknown"


def note_origin(root: Path, old: str, version: str) -> None:
    """A line under the README's title saying where the project came from."""
    readme = root / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if title is not None:
        lines.insert(title + 1, f"\nStarted from the {old} template, version {version}.\n")
        readme.write_text("".join(lines))


def reset_configs(root: Path, new: str) -> Path:
    """``configs/NAME.yaml``: the manifest example with this project's data and run folders."""
    text = (root / "configs" / "manifest_example.yaml").read_text()
    for before, after in (
        ("data/my_data/", f"data/{new}/"),
        ("runs/my_data", f"runs/{new}"),
        ("configs/my_data.yaml", f"configs/{new}.yaml"),
        ("copy this file, then edit", "edit"),
    ):
        text = text.replace(before, after)
    out = root / "configs" / f"{new}.yaml"
    out.write_text(text)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the new package name, a lower-case Python identifier (acme_vision)")
    parser.add_argument("--reset-configs", action="store_true", help="write configs/NAME.yaml for your data")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project to rename (default: this one)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    old = current_package(root)
    check_name(args.name, old, root)
    version = template_version(root)

    changed = rewrite(root, old, args.name)
    (root / "src" / old).rename(root / "src" / args.name)
    set_version(root, "0.1.0")
    reset_changelog(root, old, args.name, version)
    note_origin(root, old, version)
    print(f"renamed {old} -> {args.name}: {len(changed)} files rewritten, src/{args.name}/")
    if args.reset_configs:
        print(f"your data's config: {reset_configs(root, args.name).relative_to(root)}")
    print(f'next: pip uninstall -y {old} && pip install -e ".[dev,graph]" && pytest')


if __name__ == "__main__":
    main(sys.argv[1:])

"""The source map in docs/code-map.md names every module under src/, so a newcomer finds every room."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mapped_paths(text: str) -> set[str]:
    """Module paths the source map names, as paths under the package.

    Each line's first column names one or more modules (``a.py, b.py``, ``dir/{a,b}.py``); a line
    naming only a folder (``data/``) is the folder of the more indented lines below it.
    """
    block = text.split("```\nsrc/", 1)[1].split("```", 1)[0]
    paths: set[str] = set()
    folders: list[tuple[int, str]] = []  # (indent, folder) of the enclosing folder lines
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        names = re.split(r"\s{2,}", line.strip())[0]
        folders = [(i, f) for i, f in folders if i < indent]
        prefix = "".join(f for _, f in folders)
        if names.endswith("/") and "," not in names:
            folders.append((indent, names))
            continue
        for name in names.split(", "):
            group = re.fullmatch(r"([\w/]*)\{([\w,]+)\}\.py", name)
            stems = [f"{group[1]}{stem}.py" for stem in group[2].split(",")] if group else [name]
            paths |= {prefix + stem for stem in stems if stem.endswith(".py")}
    return paths


def test_mapped_paths_reads_folders_lists_and_brace_groups() -> None:
    text = (
        "```\nsrc/pkg/\n  main.py    entry\n  data/\n    {a,b}.py  two\n    x.py, y.py  more\n"
        "  lit/wandb/media.py  one\n```\n"
    )
    assert mapped_paths(text) == {
        "main.py",
        "data/a.py",
        "data/b.py",
        "data/x.py",
        "data/y.py",
        "lit/wandb/media.py",
    }


def test_every_module_is_on_the_map() -> None:
    [package] = [p for p in (ROOT / "src").iterdir() if (p / "__init__.py").is_file()]
    skip = ("__init__.py", "__main__.py")
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py") if p.name not in skip}
    mapped = mapped_paths((ROOT / "docs" / "code-map.md").read_text())
    missing, stale = sorted(modules - mapped), sorted(mapped - modules)
    assert not missing, f"modules missing from docs/code-map.md's source map: {missing}"
    assert not stale, f"docs/code-map.md's source map names modules that do not exist: {stale}"

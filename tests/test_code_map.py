"""The source map in docs/code-map.md names every module under src/, so a newcomer finds every room."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mapped_paths(text: str) -> set[str]:
    """Module paths the map names: ``lit/module.py``, and ``data/modalities/{image,text}.py`` for several."""
    block = text.split("```\nsrc/", 1)[1].split("```", 1)[0]
    paths = set()
    for folder, names in re.findall(r"([\w/]*)\{([\w,]+)\}\.py", block):
        paths |= {f"{folder}{name}.py" for name in names.split(",")}
    paths |= set(re.findall(r"(?<![\w{,])([\w/]+\.py)\b", block))
    return paths


def test_mapped_paths_reads_single_paths_and_brace_groups() -> None:
    text = "```\nsrc/pkg/\n  main.py  entry\n  data/{a,b}.py  two\n  lit/wandb/media.py  one\n```\n"
    assert mapped_paths(text) == {"main.py", "data/a.py", "data/b.py", "lit/wandb/media.py"}


def test_every_module_is_on_the_map() -> None:
    [package] = [p for p in (ROOT / "src").iterdir() if (p / "__init__.py").is_file()]
    skip = ("__init__.py", "__main__.py")
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py") if p.name not in skip}
    mapped = mapped_paths((ROOT / "docs" / "code-map.md").read_text())
    missing, stale = sorted(modules - mapped), sorted(mapped - modules)
    assert not missing, f"modules missing from docs/code-map.md's source map: {missing}"
    assert not stale, f"docs/code-map.md's source map names modules that do not exist: {stale}"

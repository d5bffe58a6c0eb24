"""What the benchmark converters in scripts/prepare/ share: arguments, errors, progress, manifests.

Each converter reads a dataset as its official release lays it out (the user downloads it) and writes
a manifest that mmfuse reads, beside the files it points to. Only the standard library, NumPy and
Pillow are imported here, so a converter starts fast and runs without torch.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "val", "test")


class PrepareError(Exception):
    """A problem with the downloaded dataset: printed as one line naming the file, exit code 1."""


def parser(description: str, root_help: str, default_out: str) -> argparse.ArgumentParser:
    """The arguments every converter takes: ``--root`` (the release), ``--out``, ``--limit``."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help=root_help)
    p.add_argument(
        "--out",
        type=Path,
        default=Path(default_out),
        help=f"folder for the manifest and converted files (default {default_out}, where the config looks)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="convert only the first N samples of each split (a quick trial run; default: all)",
    )
    return p


def need(path: Path, what: str) -> Path:
    """``path`` if it exists, else a PrepareError naming it and what it should be."""
    if not path.exists():
        raise PrepareError(f"{path}: not found ({what}); is --root the folder the release unpacks to?")
    return path


def read_json(path: Path, what: str) -> object:
    """A JSON file of the release; a PrepareError naming the file if it is missing or not JSON."""
    need(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrepareError(f"{path}: not valid JSON ({e})") from None


def read_jsonl(path: Path, what: str) -> list[dict[str, object]]:
    """A JSON-lines file of the release, one object per line; errors name the file and line."""
    need(path, what)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise PrepareError(f"{path}, line {number}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise PrepareError(f"{path}, line {number}: expected a JSON object")
        rows.append(obj)
    return rows


def load_npy(path: Path, what: str) -> np.ndarray:
    """A NumPy array of the release (memory-mapped: AV-MNIST's audio is ~750 MB)."""
    need(path, what)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise PrepareError(f"{path}: not a NumPy array file ({e})") from None


def link_folder(target: Path, out: Path, name: str) -> str:
    """Make ``out/name`` lead to the release's folder ``target``; return ``name`` for the manifest's cells.

    The manifest's media paths are relative to its folder and may not leave it (docs/own-data.md),
    so the release's media folder is linked in, not copied: a symbolic link placed inside the data
    folder is followed. Nothing is linked when ``out/name`` is that folder already.
    """
    link = out / name
    if link.exists() and link.resolve() == target.resolve():
        return name
    if link.exists() or link.is_symlink():
        raise PrepareError(f"{link} exists and is not {target}: remove it or choose another --out")
    link.symlink_to(target.resolve(), target_is_directory=True)
    return name


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, every 10% in a log file."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self._next_print = 0

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self._next_print or self.done == self.total:
            end = "\r" if self.tty and self.done < self.total else "\n"
            seconds = time.monotonic() - self.start
            print(f"{self.label}: {self.done}/{self.total} ({seconds:.0f} s)", end=end, file=sys.stderr)
            every = self.total // 200 if self.tty else self.total // 10
            self._next_print = self.done + max(1, every)


def limited(items: Sequence[object], limit: int | None) -> Sequence[object]:
    return items if limit is None else items[:limit]


def write_manifest(path: Path, rows: Iterable[dict[str, str]], columns: Sequence[str]) -> Path:
    """Write the rows (all cells text) as CSV or JSON lines, by ``path``'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # a stopped run leaves no half-written manifest behind
    with tmp.open("w", newline="", encoding="utf-8") as f:
        if path.suffix == ".csv":
            writer = csv.DictWriter(f, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                f.write(json.dumps({c: row[c] for c in columns}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def grey_png(pixels: np.ndarray, path: Path) -> None:
    """Save a 2-D array of values in [0, 255] as an 8-bit grey PNG (values rounded, clipped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="L").save(path)


def split_counts(rows: Sequence[dict[str, str]]) -> str:
    counts = {s: sum(1 for r in rows if r["split"] == s) for s in SPLITS}
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def next_steps(manifest: Path, config: str, default_manifest: str) -> None:
    """Print the commands that check the converted data and train on it."""
    override = ""
    if manifest.resolve() != Path(default_manifest).resolve():
        override = f" --data.init_args.source.init_args.path {manifest}"
    print(f"manifest {manifest}")
    print("next:")
    print(f"  mmfuse check-data --config {config}{override}")
    print(f"  mmfuse fit --config {config}{override}")


def run(main: Callable[[list[str] | None], int]) -> None:
    """Run a converter's ``main``: a PrepareError is one line on stderr and exit code 1."""
    try:
        code = main(None)
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    raise SystemExit(code)

"""Reproduce the README's results table: the quickstart with each fuser and each single-modality baseline.

    python benchmarks/quickstart_table.py            # all rows, about 10 minutes on 2 CPU cores
    python benchmarks/quickstart_table.py late text  # a subset, by row name

Each row is one `mmfuse fit` in a fresh process (so its wall time includes start-up, fitting and the
test of the best checkpoint), run one after another so that they do not compete for cores. The
synthetic data is generated before the first row and its time is printed separately.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROWS = {
    "cross_attention": ["configs/fusion/cross_attention.yaml"],
    "concat": ["configs/fusion/concat.yaml"],
    "late": ["configs/fusion/late.yaml"],
    "image": ["configs/baselines/image_only.yaml"],
    "text": ["configs/baselines/text_only.yaml"],
    "audio": ["configs/baselines/audio_only.yaml"],
}


def main(names: list[str]) -> None:
    root = Path(__file__).resolve().parents[1]
    out = root / "runs" / "table"
    start = time.perf_counter()
    prepare = "from mmfuse.data import SyntheticSource; SyntheticSource().prepare()"
    subprocess.run([sys.executable, "-c", prepare], cwd=root, check=True)
    print(f"data ready in {time.perf_counter() - start:.1f} s")
    print("| run | command | test acc | test macro-F1 | wall time |")
    print("|---|---|---|---|---|")
    for name in names or list(ROWS):
        extra = [a for config in ROWS[name] for a in ("--config", config)]
        run_dir = out / name
        cmd = ["mmfuse", "fit", "--config", "configs/quickstart.yaml", *extra]
        start = time.perf_counter()
        subprocess.run(
            [*cmd, "--trainer.default_root_dir", str(run_dir)], cwd=root, check=True, capture_output=True
        )
        wall = time.perf_counter() - start
        newest = max(run_dir.glob("*/*/test_metrics.json"), key=lambda p: p.stat().st_mtime)
        metrics = json.loads(newest.read_text())
        shown = " ".join(cmd[2:]).replace("--config ", "")
        print(f"| {name} | `{shown}` | {metrics['test/acc']:.3f} | {metrics['test/f1']:.3f} | {wall:.0f} s |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "rows", nargs="*", metavar="ROW", help=f"rows to run (default all): {', '.join(ROWS)}"
    )
    rows = parser.parse_args().rows
    if unknown := [r for r in rows if r not in ROWS]:
        parser.error(f"unknown rows {unknown}: choose from {', '.join(ROWS)}")
    main(rows)

"""Reproduce the README's results table: the quickstart with each fuser and each single-modality baseline.

    python benchmarks/quickstart_table.py            # all rows, about 10 minutes on 2 CPU cores
    python benchmarks/quickstart_table.py late text  # a subset, by row name

Each row is one `mmfuse fit` in a fresh process (so its wall time includes start-up, fitting and the
test of the best checkpoint), run one after another so that they do not compete for cores. The
synthetic data is generated before the first row and its time is printed separately.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fit_runs.py beside it, however this file is run
from fit_runs import config_args, fit

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
        configs = ["configs/quickstart.yaml", *ROWS[name]]
        result = fit(configs, out / name)
        shown = " ".join(config_args(configs)).replace("--config ", "")
        acc, f1 = result.metrics["test/acc"], result.metrics["test/f1"]
        print(f"| {name} | `{shown}` | {acc:.3f} | {f1:.3f} | {result.wall_s:.0f} s |")


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

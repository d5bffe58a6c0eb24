"""``mmfuse ablate``: test a checkpoint with every non-empty subset of its modalities."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mmfuse.commands.config import command_parser, full_cli
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.presence import pattern_name
from mmfuse.lit.run_directory import run_directory
from mmfuse.lit.wandb.ablation import log_ablation

DESCRIPTION = """\
Evaluate a checkpoint on the test split once per non-empty subset of its modalities: the modalities
outside the subset are treated as absent for every sample (masked, exactly as an empty manifest
cell), the others as the data has them. Prints a table (subset -> test metrics, and how many test
samples had none of the subset's modalities) and writes it to ablation.json under the checkpoint's
run (<run>/eval/<time>-ablate/), beside the evaluation's config.yaml.

Every other argument is as for `mmfuse test` (--config FILE, --data.*, --trainer.*), so the config
you trained with is the config you ablate with.
"""
EXAMPLE = "example: mmfuse ablate --config configs/quickstart.yaml --ckpt_path runs/.../best-epoch006.ckpt"


def main(args: list[str]) -> int:
    """Run ``mmfuse ablate``; returns the exit code."""
    parser = command_parser("mmfuse ablate", DESCRIPTION, EXAMPLE)
    parser.add_argument(
        "--ckpt_path",
        required=True,
        help="the checkpoint to evaluate (a path, or `last`: this experiment's last.ckpt)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the table (default: <run>/eval/<time>-ablate/ablation.json)",
    )
    own, rest = parser.parse_known_args(args)
    # the checkpoint's tasks and classes; a URL fetched once; `last`: this experiment's last.ckpt
    cli = full_cli(rest, evaluation=("ablate", own.ckpt_path))
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    if not isinstance(model, MultimodalModule):
        parser.error(f"the model is a {type(model).__name__}, not a MultimodalModule")
    cli.check_before_start("test")
    names = sorted(model.model.encoders)
    rows: list[dict[str, Any]] = []
    ckpt: str | None = cli.checkpoint_file or cli.checkpoint  # a URL's copy in the cache; `last` resolved
    for size in range(len(names), 0, -1):
        for subset in itertools.combinations(names, size):
            model.keep_modalities = frozenset(subset)
            # the first call loads the checkpoint (weights and data state); later ones reuse them
            [metrics] = trainer.test(model, datamodule=data, ckpt_path=ckpt, verbose=False)
            ckpt = None
            rows.append(
                {
                    "modalities": list(subset),
                    "name": pattern_name(subset),
                    "metrics": {k: float(v) for k, v in sorted(metrics.items())},
                    "samples_without_input": _without_input(data, subset),
                }
            )
    model.keep_modalities = None
    if not trainer.is_global_zero:
        return 0
    out = own.output or run_directory(trainer) / "ablation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    table = {"checkpoint": cli.checkpoint, "modalities": names, "subsets": rows}
    out.write_text(json.dumps(table, indent=2) + "\n")
    _print(rows, out)
    where = log_ablation(trainer, rows)  # W&B: the table, each subset's metrics in the summary
    if where:
        Console(soft_wrap=True).print(f"[bold]W&B[/bold] {escape(where)}")
    return 0


def _without_input(data: Any, subset: tuple[str, ...]) -> int | None:
    """Test rows with none of ``subset``'s modalities (their prediction comes from the bias alone)."""
    rows = getattr(data, "rows", None)
    modalities = getattr(data, "modalities", None)
    if rows is None or modalities is None:
        return None
    columns = [modalities[m].column for m in subset]
    return sum(all(not r.cells.get(c, "").strip() for c in columns) for r in rows("test"))


def _print(rows: list[dict[str, Any]], out: Path) -> None:
    keys = sorted(
        {k for r in rows for k in r["metrics"] if "/presence/" not in k}
    )  # the breakdown: JSON only
    table = Table(title="test metrics with a subset of the modalities", title_justify="left")
    table.add_column("modalities")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("samples without input", justify="right")
    for r in rows:
        values = [f"{r['metrics'][k]:.4f}" if k in r["metrics"] else "-" for k in keys]
        missing = r["samples_without_input"]
        table.add_row(escape(r["name"]), *values, "-" if missing is None else str(missing))
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(f"[bold]ablation[/bold] {escape(str(out))}")

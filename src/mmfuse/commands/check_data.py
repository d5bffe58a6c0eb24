"""``mmfuse check-data``: check the manifest and every file it references before a run."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from jsonargparse import ArgumentParser, Namespace
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from torch import nn

from mmfuse.commands.config import build_data, command_parser, parse_config
from mmfuse.data.decode import STATUSES
from mmfuse.data.manifest.errors import DataError
from mmfuse.data.multimodal import MultimodalDataModule
from mmfuse.data.problems import Report, check, write_problems
from mmfuse.lit.data_links import config_get, data_modalities, link_data_into_encoders, mismatches

DESCRIPTION = """\
Check a dataset before training: read the manifest of every split, decode every file it references
(in parallel worker processes, with the same decoders that training uses) and report rows per split,
coverage per modality (present / missing / broken), class counts per split, and one line per problem
with its split, row, id, column, file and reason. Then the data is checked against the model as
training would before its first batch: the same modality names as model.encoders, and what the
data implies about each encoder (channels, vocabulary size, mel bins, ...). Exit code 1 when
anything is broken, else 0.

Problems found: a line that is not valid CSV/JSON (with its line number); an empty or duplicate id;
the same id in two splits; an unknown split; a modality column the manifest does not have; a
missing file; an image that does not decode or is truncated; audio that is empty, undecodable,
all zero, NaN/inf, or at another sample rate with resample: false; text with no tokens; an empty
cell of a modality configured with required: true; a row with no modality at all; a target that is
empty (in a split that has targets) or not one of the classes; an image over max_pixels; a media
path outside the manifest's folder (unless allow_outside_root: true); a graph JSON file that is too
large or nested too deeply, or a .pt graph with unsafe content (unless trust_pickle: true). For the
splits as a whole: an empty train/val/test split, and a class learnt from the data that only val or
test has (fit refuses both before training).

On WebDataset shards (ShardSource) the same problems are reported, each located by shard, member
and sample key (file train-000003.tar:000123.png, id '000123'), and a shard that cannot be read.

Every other argument is as for `mmfuse fit` (--config FILE, --data.init_args...), so the config
you train with is the config you check.
"""
EXAMPLE = "example: mmfuse check-data --config configs/my_data.yaml --problems_csv problems.csv"


def main(args: list[str]) -> int:
    """Run ``mmfuse check-data``; returns the exit code."""
    parser = command_parser("mmfuse check-data", DESCRIPTION, EXAMPLE)
    parser.add_argument("--workers", type=int, default=2, help="processes that decode files (default 2)")
    parser.add_argument("--problems_csv", type=Path, help="also write the problems to this CSV file")
    own, rest = parser.parse_known_args(args)
    if not any(a == "--config" or a.startswith(("--config=", "--data")) for a in rest):
        parser.error("give the run's config: --config FILE (and any --data.* overrides)")
    config = parse_config(rest)
    data = build_data(config)
    if not isinstance(data, MultimodalDataModule):
        source, modalities = data.source, {data.name: data}
        if source is None:
            parser.error(f"{type(data).__name__} has no `source`: nothing to check")
    else:
        source, modalities = data.source, data.modalities
    report = check(source, modalities, num_workers=own.workers)
    console = Console(soft_wrap=True)
    model_problems = check_model(config, data) if report.ok else []
    print_report(report, console, model_problems)
    if own.problems_csv is not None:
        path = write_problems(own.problems_csv, report.problems)
        console.print(f"[bold]problems written to[/bold] {escape(str(path))}")
    return 0 if report.ok and not model_problems else 1


def check_model(config: Namespace, data: pl.LightningDataModule) -> list[str]:
    """What training would stop on before its first batch: the data and the encoders disagree
    (:mod:`mmfuse.lit.data_links`), after the data's settings are filled into the encoders as the
    ``mmfuse`` command does (:mod:`mmfuse.lit.data_links`); an encoder that cannot be built."""
    if config_get(config_get(config, "model"), "encoders") is None:
        return []
    try:
        link_data_into_encoders(config, data)
        encoders = build_encoders(config)
    except ValueError as error:  # names that differ (ConfigError), an encoder rejecting its settings
        return [str(error)]
    return mismatches(data_modalities(data), encoders)


def build_encoders(config: Namespace) -> dict[str, nn.Module]:
    """Only the configured encoders (``model.encoders``), built."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--encoders", type=dict[str, nn.Module])
    encoders = config["model"]["encoders"]
    plain = {k: v.as_dict() if isinstance(v, Namespace) else v for k, v in encoders.items()}
    return dict(parser.instantiate(parser.parse_object({"encoders": plain}))["encoders"])


def print_report(report: Report, console: Console, model_problems: list[str] | None = None) -> None:
    """Tables of rows, coverage and classes per split, then one line per problem of the data and of
    the data against the model, then a verdict."""
    rate = report.total_rows / report.seconds if report.seconds else 0.0
    console.print(
        f"[bold]manifest[/bold] {escape(report.manifest)}: {report.total_rows} rows, "
        f"checked in {report.seconds:.1f} s ({rate:.0f} rows/s)"
    )
    if report.rows:
        table = Table(title="rows and modality coverage (present / missing / broken)", title_justify="left")
        table.add_column("split")
        table.add_column("rows", justify="right")
        for name, column in report.modalities.items():
            table.add_column(name if name == column else f"{name} ({column})", justify="right")
        for split, n in report.rows.items():
            cover = report.coverage.get(split, {})
            counts = [cover.get(m) for m in report.modalities]
            cells = ["-" if c is None else " / ".join(str(c[s]) for s in STATUSES) for c in counts]
            table.add_row(split, str(n), *cells)
        console.print(table)
    if report.class_counts:
        splits = [s for s in report.rows if s in report.class_counts]
        table = Table(title="class counts (rows with a valid target)", title_justify="left")
        table.add_column("class")
        for split in splits:
            table.add_column(split, justify="right")
        for name in report.classes:
            table.add_row(escape(name), *(str(report.class_counts[s][name]) for s in splits))
        console.print(table)
    for error in report.problems:
        console.print(format_problem(error), markup=False, highlight=False)
    for problem in model_problems or []:
        console.print(f"model   {problem}", markup=False, highlight=False)
    rows = {e.row for e in report.problems if e.row is not None}
    if report.ok and not model_problems:
        console.print("[bold green]OK[/bold green]: no problems found")
    elif report.ok:
        n = len(model_problems or [])
        console.print(f"[bold red]the data does not fit the model[/bold red]: {n} problem{'s' * (n != 1)}")
    else:
        console.print(f"[bold red]{len(report.problems)} problems[/bold red] in {len(rows)} rows")


def format_problem(error: DataError) -> str:
    """``split  row N  id X  column C  file F  reason``; ``-`` for what is unknown."""

    def show(value: object) -> str:
        return "-" if value is None or value == "" else str(value)

    return (
        f"{show(error.split):7} row {show(error.row)}  id {show(error.sample_id)}  "
        f"column {show(error.column)}  file {show(error.file)}  {error.reason}"
    )

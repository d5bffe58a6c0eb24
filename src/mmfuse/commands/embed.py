"""``mmfuse embed``: a checkpoint's per-modality and fused embeddings of one split, and retrieval."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import BasePredictionWriter
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mmfuse.commands.config import command_parser, full_cli
from mmfuse.commands.zero_shot import (
    DEFAULT_PROMPT,
    class_labels,
    prompt_embeddings,
    prompts_for,
    text_modality,
    unknown_words,
    zero_shot,
)
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.prediction_writer import PredictionWriter
from mmfuse.lit.run_directory import run_directory
from mmfuse.lit.wandb.logger import WandbLogger
from mmfuse.models.retrieval import retrieval_report

DESCRIPTION = """\
Run a checkpoint over one split and write, for every sample id once (also under DDP), each
modality's embedding (its encoder's tokens, mean-pooled over the real tokens, before fusion), the
fused embedding (what the task heads read) and which modalities the sample has, to one
embeddings.npz under the checkpoint's run (<run>/eval/<time>-embed/):

  ids (N,) str, in the manifest's order; fused (N, D); <modality> (N, D); <modality>_present (N,) bool

Load it with numpy.load(path). An absent modality's embedding is zeros (and _present False).
With --retrieval, every pair of modalities is also evaluated as cross-modal retrieval over the split
(cosine similarity; only samples that have both): recall@1/5/10 both ways and the median rank of the
true match, printed and written to retrieval.json beside it.
With --zero_shot [TASK_OR_COLUMN], every other modality is classified zero-shot through the text
modality: each sample takes the class whose prompt (--prompt, "{}" filled with the class name,
tokenised by the data's text module) is nearest by cosine to its embedding, the prompt embedded by
the text encoder as a caption is. The classes are a multiclass task's (default: the data's first) or
those of any manifest column. Accuracy and per-class counts are printed, and written with the
confusion matrix to zero_shot.json beside the embeddings. Meaningful for a model trained with the
contrastive objective on data whose text names the classes.

Every other argument is as for `mmfuse predict` (--config FILE, --data.*, --trainer.*), so the config
you trained with is the config you embed with.
"""
EXAMPLE = """\
examples:
  mmfuse embed --config configs/quickstart.yaml --ckpt_path last --split test --retrieval
  mmfuse embed --config CONFIG --ckpt_path last --zero_shot colour --prompt "the {} dot"
"""
KS = (1, 5, 10)


class EmbeddingCollector(BasePredictionWriter):
    """Gathers the predict loop's embeddings from every process to rank 0, each sample id once.

    After ``trainer.predict``, rank 0's :attr:`arrays` holds ``ids`` and the arrays of
    :data:`DESCRIPTION`, in the order ``order()`` gives (called on rank 0 once the data is set up;
    ids it lacks go last, in the order seen).
    """

    def __init__(self, order: Callable[[], Sequence[str]] = list) -> None:
        super().__init__(write_interval="epoch")
        self.order = order
        self.arrays: dict[str, np.ndarray] | None = None

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        parts = [_numpy(batch) for batch in predictions]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, parts)
            parts = [p for rank in gathered for p in rank]
        if trainer.global_rank != 0:
            return
        self.arrays = _merge(parts, {sample_id: k for k, sample_id in enumerate(self.order())})


def _numpy(batch: dict[str, Any]) -> dict[str, Any]:
    """One predict batch as plain arrays (small to send between processes)."""
    out: dict[str, Any] = {"ids": list(batch["ids"]), "fused": batch["fused"].float().numpy()}
    for m, e in batch["embeddings"].items():
        out[m] = e.float().numpy()
        out[f"{m}_present"] = batch["present"][m].numpy().astype(bool)
    return out


def _merge(parts: Sequence[dict[str, Any]], order: dict[str, int]) -> dict[str, np.ndarray]:
    """Concatenate the batches, keep each id's first row, sort by ``order``."""
    if not parts:
        raise ValueError("mmfuse embed: the split gave no batches")
    keys = [k for k in parts[0] if k != "ids"]
    ids = [i for p in parts for i in p["ids"]]
    columns = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    first: dict[str, int] = {}
    for row, sample_id in enumerate(ids):
        first.setdefault(sample_id, row)  # a sampler that pads a process repeats a sample: keep one
    unknown = len(order)
    rows = sorted(first.values(), key=lambda r: (order.get(ids[r], unknown), r))
    return {"ids": np.array([ids[r] for r in rows]), **{k: v[rows] for k, v in columns.items()}}


def retrieval(arrays: dict[str, np.ndarray], modalities: Sequence[str]) -> dict[str, dict[str, float]]:
    """Every pair of ``modalities``: recall@k both ways and median rank, over the rows that have both.

    Returns:
        ``"<a>-<b>"`` -> ``{"samples": n, "<a>_to_<b>/recall@1": ..., "<a>_to_<b>/median_rank": ..., ...}``.
    """
    out: dict[str, dict[str, float]] = {}
    for a, b in itertools.combinations(sorted(modalities), 2):
        both = arrays[f"{a}_present"] & arrays[f"{b}_present"]
        ea, eb = torch.from_numpy(arrays[a][both]), torch.from_numpy(arrays[b][both])
        out[f"{a}-{b}"] = {"samples": float(both.sum()), **retrieval_report(ea, eb, KS, (a, b))}
    return out


def main(args: list[str]) -> int:
    """Run ``mmfuse embed``; returns the exit code."""
    parser = command_parser("mmfuse embed", DESCRIPTION, EXAMPLE)
    parser.add_argument(
        "--ckpt_path",
        required=True,
        help="the checkpoint to embed with (a path, or `last`: this experiment's last.ckpt)",
    )
    parser.add_argument(
        "--split",
        choices=["train", "val", "test", "all"],
        help="the split to embed (default: the data's predict_split, test unless set)",
    )
    parser.add_argument(
        "--retrieval",
        action="store_true",
        help="also evaluate cross-modal retrieval between every pair of modalities",
    )
    parser.add_argument(
        "--zero_shot",
        "--zero-shot",
        nargs="?",
        const="",
        metavar="TASK_OR_COLUMN",
        help="also classify every non-text modality zero-shot by its nearest class-name prompt; the "
        "classes of this multiclass task or manifest column (default: the data's first multiclass task)",
    )
    parser.add_argument(
        "--prompt",
        default=DEFAULT_PROMPT,
        help=f"the zero-shot prompt template; {{}} is the class name (default: {DEFAULT_PROMPT!r})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="folder to write to (default: <run>/eval/<time>-embed/)",
    )
    own, rest = parser.parse_known_args(args)
    cli = full_cli(rest, evaluation=("embed", own.ckpt_path))
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    if not isinstance(model, MultimodalModule):
        parser.error(f"the model is a {type(model).__name__}, not a MultimodalModule")
    if own.split is not None:
        data.predict_split = own.split
    cli.check_before_start("predict")
    if own.zero_shot is not None:  # a bad template or no text modality: said before the split is embedded
        prompts_for(["class"], own.prompt)
        text_modality(getattr(data, "modalities", {}), list(model.model.encoders))
        class_labels(data.manifest, [], [], own.zero_shot or None)  # the task or column exists
    split = getattr(data, "predict_split", "test")

    def order() -> list[str]:  # the manifest's order of the split's rows
        return [r.id for r in data.rows(split, labelled=False)] if hasattr(data, "rows") else []

    collector = EmbeddingCollector(order)
    # the embeddings instead of predictions.csv
    callbacks = [c for c in trainer.callbacks if not isinstance(c, PredictionWriter)]  # type: ignore[attr-defined]
    trainer.callbacks = [*callbacks, collector]  # type: ignore[attr-defined]
    ckpt = cli.checkpoint_file or cli.checkpoint  # a URL's copy in the cache; `last` resolved
    trainer.predict(model, datamodule=data, ckpt_path=ckpt, return_predictions=False)
    if not trainer.is_global_zero or collector.arrays is None:
        return 0
    out = own.output or run_directory(trainer)
    out.mkdir(parents=True, exist_ok=True)
    arrays = collector.arrays
    np.savez(out / "embeddings.npz", **arrays)  # type: ignore[arg-type]  # numpy's stub: the names are kwargs
    console = Console(soft_wrap=True)
    names = sorted(model.model.encoders)
    shapes = ", ".join(f"{k} {tuple(arrays[k].shape)}" for k in ("fused", *names))
    console.print(f"[bold]embeddings[/bold] {len(arrays['ids'])} samples of {split!r}: {escape(shapes)}")
    console.print(f"[bold]written[/bold] {escape(str(out / 'embeddings.npz'))}")
    if own.retrieval:
        report = retrieval(arrays, names)
        table = {"checkpoint": cli.checkpoint, "split": split, "pairs": report}
        (out / "retrieval.json").write_text(json.dumps(table, indent=2) + "\n")
        _print(report, console)
        console.print(f"[bold]retrieval[/bold] {escape(str(out / 'retrieval.json'))}")
        _log(trainer, report)
    if own.zero_shot is not None:
        report_zs = _zero_shot(model, data, arrays, own.zero_shot or None, own.prompt, console)
        (out / "zero_shot.json").write_text(
            json.dumps({"checkpoint": cli.checkpoint, "split": split, **report_zs}, indent=2) + "\n"
        )
        console.print(f"[bold]zero-shot[/bold] {escape(str(out / 'zero_shot.json'))}")
        accuracy = {f"zero_shot/{m}/accuracy": r["accuracy"] for m, r in report_zs["modalities"].items()}
        _log_summary(trainer, accuracy)
    for logger in trainer.loggers:
        where = logger.finish() if isinstance(logger, WandbLogger) else None
        if where:
            console.print(f"[bold]W&B[/bold] {escape(where)}")
    return 0


def _print(report: dict[str, dict[str, float]], console: Console) -> None:
    table = Table(title="cross-modal retrieval (cosine similarity)", title_justify="left")
    for column in ("query -> gallery", "samples", *(f"recall@{k}" for k in KS), "median rank"):
        table.add_column(column, justify="left" if column.startswith("query") else "right")
    for pair, values in report.items():
        a, b = pair.split("-", 1)
        for q, g in ((a, b), (b, a)):
            recall = [f"{values[f'{q}_to_{g}/recall@{k}']:.3f}" for k in KS]
            median = f"{values[f'{q}_to_{g}/median_rank']:g}"
            table.add_row(f"{q} -> {g}", f"{values['samples']:.0f}", *recall, median)
    console.print(table)


def _log(trainer: pl.Trainer, report: dict[str, dict[str, float]]) -> None:
    """The retrieval figures in the evaluation's W&B summary, as ``retrieval/<a>_to_<b>/...``."""
    metrics = {f"retrieval/{k}": v for values in report.values() for k, v in values.items()}
    _log_summary(trainer, {k: v for k, v in metrics.items() if "samples" not in k})


def _log_summary(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(metrics)


def _zero_shot(
    model: MultimodalModule,
    data: Any,
    arrays: dict[str, np.ndarray],
    by: str | None,
    template: str,
    console: Console,
) -> dict[str, Any]:
    """Zero-shot classification of every non-text modality (see DESCRIPTION), printed; the report."""
    encoders = model.model.encoders
    text = text_modality(getattr(data, "modalities", {}), list(encoders))
    manifest = data.manifest
    classes = class_labels(manifest, data.rows(data.predict_split, labelled=False), list(arrays["ids"]), by)
    prompts = prompts_for(classes.names, template)
    text_data = data.modalities[text]
    unknown = unknown_words(text_data, manifest.root, classes.names)
    if unknown:
        words = escape(str(unknown))
        console.print(f"[bold yellow]zero-shot[/bold yellow] class names not in the text vocabulary: {words}")
    class_embeddings = prompt_embeddings(encoders[text], text_data, manifest.root, prompts)
    others = sorted(m for m in encoders if m != text)
    report = zero_shot(arrays, classes, class_embeddings, others)
    table = Table(
        title=f"zero-shot classification by {classes.column!r}, prompt {template!r}", title_justify="left"
    )
    for column in ("modality", "samples", "accuracy", "chance"):
        table.add_column(column, justify="left" if column == "modality" else "right")
    for m, r in report.items():
        table.add_row(m, str(r["samples"]), f"{r['accuracy']:.3f}", f"{r['chance']:.3f}")
    console.print(table)
    for m, r in report.items():  # a line, not table columns: there may be many classes
        right = ", ".join(f"{name} {c['correct']}/{c['samples']}" for name, c in r["per_class"].items())
        console.print(f"{m} correct per class: {escape(right)}")
    return {
        "column": classes.column,
        "classes": classes.names,
        "prompt": template,
        "text": text,
        "prompts": prompts,
        "modalities": report,
    }

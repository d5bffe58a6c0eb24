"""Contrastive pre-training without labels, then zero-shot and few-label classifiers vs training from scratch.

    python benchmarks/pretrain_probe.py                                  # the README's figures
    python benchmarks/pretrain_probe.py --labels-per-class 1 5 20 --seeds 0 1 2 --finetune
    python benchmarks/pretrain_probe.py --quick                          # the machinery only (tests)

The data is the relational set with one dot per image (``num_objects: 1``): the caption "the red dot
is on the left" names the dot's colour, so caption and image share one fact, the colour (the caption
always says "left", whatever the side). The labelled task is that colour (six classes, the manifest's
``colour`` column), which the image alone answers. Every step is the real ``mmfuse`` command, in a
fresh process, one after another (the commands are printed):

1. **pre-train** (``configs/experiments/contrastive_pretrain.yaml``): image and text encoders aligned
   by InfoNCE, no label read; its last checkpoint is used.
2. **embed** the test split with ``--retrieval --zero_shot colour --prompt "the {} dot"``: recall@1
   both ways against chance (1/N) and against what this data allows (only the colour is shared: a
   model that matches it perfectly and nothing else finds the true caption among the n_c test
   captions of that colour, expected recall@1 = mean of 1/n_c); how often an image's nearest caption
   names its colour; zero-shot accuracy.
3. **few labels**: for each K in ``--labels-per-class`` and each seed, an image-only colour classifier
   trained on K labelled images per class (``data.train_per_class``, drawn by the seed; val and test
   stay whole, the best val checkpoint is tested): a **probe** (the pre-trained image encoder frozen,
   ``InitEncoders``, a linear head on its mean-pooled tokens), with ``--finetune`` the same encoder
   **fine-tuned**, and the same model **from scratch**. Test accuracy, mean ± std over the seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fit_runs.py beside it, however this file is run
from fit_runs import ROOT, FitResult, config_args, fit

PRETRAIN = [
    "configs/quickstart.yaml",
    "configs/experiments/relational.yaml",
    "configs/experiments/contrastive_pretrain.yaml",
    "configs/fusion/late.yaml",  # no head in pre-training: the lightest fuser
    "configs/logger/csv.yaml",
]
#: the labelled runs: the image alone, a linear head (LateFusion, head_hidden 0) on its pooled tokens
IMAGE_ONLY = {
    "model": {
        "encoders": {
            "image": {
                "class_path": "mmfuse.models.encoders.ImageCNN",
                "init_args": {"d_model": 64, "channels": [32, 64]},  # as relational.yaml pre-trains it
            }
        },
        "fusion": {"class_path": "mmfuse.models.fusion.LateFusion", "init_args": {"d_model": 64}},
    },
    "data": {
        "init_args": {
            "modalities": {
                "image": {
                    "class_path": "mmfuse.data.ImageDataModule",
                    "init_args": {"column": "image", "size": 32, "channels": 3},
                }
            },
            "source": {"init_args": {"tasks": [{"name": "colour"}]}},
        }
    },
}
PROMPT = "the {} dot"
INIT = "mmfuse.lit.encoder_init.InitEncoders"


def data_args(runs: Path, samples: int, quick: bool) -> list[str]:
    return [
        f"--data.init_args.source.init_args.root={runs / 'data'}",
        f"--data.init_args.source.init_args.num_samples={samples}",
        "--data.init_args.source.init_args.num_objects=1",
        *(["--data.init_args.num_workers=0"] if quick else []),
        "--trainer.enable_progress_bar=false",
    ]


def fit_printed(configs: Sequence[str], run_dir: Path, extra: Sequence[str]) -> FitResult:
    """:func:`fit_runs.fit`, its command printed first."""
    cmd = ["mmfuse", "fit", *config_args(configs), *extra, "--trainer.default_root_dir", str(run_dir)]
    print("$", shlex.join(cmd), flush=True)
    return fit(configs, run_dir, extra)


def embed(configs: Sequence[str], extra: Sequence[str], ckpt: Path, out: Path) -> None:
    cmd = ["mmfuse", "embed", *config_args(configs), *extra, "--ckpt_path", str(ckpt), "--split", "test"]
    cmd += ["--retrieval", "--zero_shot", "colour", "--prompt", PROMPT, "--output", str(out)]
    print("$", shlex.join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def alignment(out: Path, manifest: Path) -> dict[str, float]:
    """What ``embed`` wrote, and what the shared content allows (see the module's docstring)."""
    pair = json.loads((out / "retrieval.json").read_text())["pairs"]["image-text"]
    zero = json.loads((out / "zero_shot.json").read_text())["modalities"]["image"]
    arrays = np.load(out / "embeddings.npz")
    with manifest.open(newline="") as f:
        colour_of = {r["id"]: r["colour"] for r in csv.DictReader(f)}
    colours = np.array([colour_of[i] for i in arrays["ids"]])
    n = len(colours)
    counts = {c: int((colours == c).sum()) for c in set(colours)}
    image = arrays["image"] / np.linalg.norm(arrays["image"], axis=1, keepdims=True)
    text = arrays["text"] / np.linalg.norm(arrays["text"], axis=1, keepdims=True)
    nearest = (image @ text.T).argmax(axis=1)  # each image's nearest caption
    return {
        "samples": n,
        "chance": 1 / n,
        "ceiling": float(np.mean([1 / counts[c] for c in colours])),
        "image_to_text": pair["image_to_text/recall@1"],
        "text_to_image": pair["text_to_image/recall@1"],
        "median_rank": pair["image_to_text/median_rank"],
        "same_colour": float((colours[nearest] == colours).mean()),
        "zero_shot": zero["accuracy"],
    }


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1500, help="samples generated (70%% train)")
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each labelled run")
    parser.add_argument("--labels-per-class", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--finetune", action="store_true", help="also fine-tune the pre-trained encoder")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "pretrain_probe")
    parser.add_argument("--output", type=Path, help="also write the lines printed at the end here")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch: the machinery only")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.pretrain_epochs, args.epochs = 120, 1, 1
    common = data_args(args.runs, args.samples, args.quick)
    start = time.perf_counter()

    pre = fit_printed(
        PRETRAIN, args.runs / "pretrain", [*common, f"--trainer.max_epochs={args.pretrain_epochs}"]
    )
    ckpt = pre.run_dir / "checkpoints" / "last.ckpt"
    embed(PRETRAIN, common, ckpt, args.runs / "embed")
    a = alignment(args.runs / "embed", args.runs / "data" / "manifest.csv")

    probe_config = args.runs / "image_only_colour.yaml"
    probe_config.write_text(yaml.safe_dump(IMAGE_ONLY, sort_keys=False))
    arms = {"probe": [f"--trainer.callbacks+={INIT}", f"--trainer.callbacks.ckpt_path={ckpt}"]}
    arms["probe"].append("--trainer.callbacks.freeze=true")
    if args.finetune:
        arms["fine-tune"] = [f"--trainer.callbacks+={INIT}", f"--trainer.callbacks.ckpt_path={ckpt}"]
    arms["scratch"] = []
    labelled = [*PRETRAIN[:2], str(probe_config), PRETRAIN[-1]]
    every = 1 if args.quick else 5
    results: dict[tuple[int, str], list[float]] = {}
    for k in args.labels_per_class:
        for seed in args.seeds:
            for arm, extra in arms.items():
                run = fit_printed(
                    labelled,
                    args.runs / f"k{k}" / arm / f"seed{seed}",
                    [
                        *common,
                        f"--seed_everything={seed}",
                        f"--data.init_args.train_per_class={k}",
                        "--data.init_args.batch_size=16",
                        f"--trainer.max_epochs={args.epochs}",
                        f"--trainer.check_val_every_n_epoch={every}",
                        *extra,
                    ],
                )
                results.setdefault((k, arm), []).append(run.metrics["test/acc"])
                print(f"K={k} {arm} seed {seed}: test acc {run.metrics['test/acc']:.3f}", flush=True)

    lines = [
        f"pre-training: {args.samples} samples, {args.pretrain_epochs} epochs, no labels; "
        f"test N={a['samples']}",
        f"recall@1 image->text {a['image_to_text']:.3f}, text->image {a['text_to_image']:.3f} "
        f"(chance 1/N = {a['chance']:.4f}; matching the colour and nothing else: {a['ceiling']:.3f}); "
        f"median rank {a['median_rank']:g}",
        f"nearest caption names the image's colour: {a['same_colour']:.3f} (chance ~1/6)",
        f"zero-shot colour accuracy, prompt {PROMPT!r}: {a['zero_shot']:.3f} (chance 1/6 = 0.167)",
        "",
        "| labelled images per class | " + " | ".join(arms) + " |",
        "|---|" + "---|" * len(arms),
    ]
    for k in args.labels_per_class:
        cells = []
        for arm in arms:
            accs = results[(k, arm)]
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            cells.append(f"{statistics.mean(accs):.3f} ± {std:.3f}")
        lines.append(f"| {k} ({6 * k} labels) | " + " | ".join(cells) + " |")
    lines.append(f"\n{len(args.seeds)} seed(s) per cell; {time.perf_counter() - start:.0f} s in all")
    print("\n".join(lines))
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    main()

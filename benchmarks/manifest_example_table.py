"""Measure ``configs/manifest_example.yaml`` on a real paired manifest: fused vs each modality vs linear.

    /tmp/skvenv/bin/python benchmarks/real_digits.py --out data/real_digits   # the data, once
    python benchmarks/manifest_example_table.py --manifest data/real_digits/manifest.csv \\
        --sklearn-python /tmp/skvenv/bin/python

Rows (all on the manifest's own train/val/test split, scored on test):

- ``fused``: the example config as a user runs it, only its ``<-`` lines set (the manifest path and
  the run folder).
- ``image`` / ``audio``: the same config with the other modality deleted from ``data.modalities`` and
  ``model.encoders`` (written to ``<out>/<row>.yaml`` and given as a second ``--config``), with
  ``on_bad_sample: skip``: rows without that modality are left out, listed in ``skipped_samples.csv``.
- ``fused_seed1``, ``image_seed1``, ``audio_seed1``: the same with ``--seed_everything 1``, so that
  the fused-over-single margin is seen on a second seed too; any ``<row>_seed<N>`` runs seed N.
- ``product``: the ``image`` and ``audio`` rows' best checkpoints predict the test split (``mmfuse
  predict``), and each test row's class is the argmax of their class probabilities multiplied (a row
  without audio: the image model's alone). When the two inputs are independent given the class, as
  here, this is what a fuser of those two models would reach by combining their evidence exactly
  (with equally frequent classes): the reference the ``fused`` row is compared with. Needs the two
  rows fitted in ``--out`` first; ``product_seed1`` uses ``image_seed1`` and ``audio_seed1``.
- ``linear``: multinomial logistic regression (scikit-learn) on the same decoded inputs the model
  reads: the resized, normalised pixels (channels averaged) plus the log-mel frames cropped/padded to
  ``max_seconds`` and averaged into 16 time bins; missing audio is the training mean. ``linear_image``
  and ``linear_audio``: the same on one input. ``C`` is chosen on val. Needs a Python with
  scikit-learn (``--sklearn-python``; not a project dependency); skipped without one.

Each ``mmfuse fit`` runs in a fresh process, one after another, so its wall time is the whole command
(start-up, fit, test of the best checkpoint) and rows do not compete for cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "manifest_example.yaml"
FITS = ["fused", "image", "audio"]
SINGLE = ["image", "audio"]
ROWS = [*FITS, "product", "linear", *(f"{row}_seed1" for row in [*FITS, "product"])]
TIME_BINS = 16


def _example() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())  # type: ignore[no-any-return]


def _single_modality(keep: str, path: Path) -> None:
    """Write the override that leaves only ``keep`` in the example's data and encoders."""
    config = _example()
    override = {
        "data": {"init_args": {"modalities": {keep: config["data"]["init_args"]["modalities"][keep]}}},
        "model": {"encoders": {keep: config["model"]["encoders"][keep]}},
    }
    path.write_text(yaml.safe_dump(override, sort_keys=False))


def _config_args(row: str, out: Path) -> list[str]:
    """The ``mmfuse`` arguments of a fitted row, the run folder and manifest aside."""
    args = ["--config", str(CONFIG.relative_to(ROOT))]
    inputs, _, seed = row.partition("_seed")
    if inputs in SINGLE:
        override = out / f"{inputs}.yaml"
        _single_modality(inputs, override)
        # a row without this modality has nothing to read: left out and listed (skipped_samples.csv),
        # so a single modality is scored on the test rows that have it
        args += ["--config", str(override), "--data.init_args.on_bad_sample", "skip"]
    if seed:
        args += ["--seed_everything", seed]
    return args


def _run(command: str, row: str, args: list[str]) -> tuple[float, float]:
    """Run ``mmfuse <command> <args>`` for ``row`` in a fresh process; its wall and CPU seconds."""
    start, cpu_start = time.perf_counter(), _children_cpu()
    done = subprocess.run(["mmfuse", command, *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{row}: mmfuse {command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, _children_cpu() - cpu_start


def _newest(run_dir: Path, pattern: str) -> Path:
    return max(run_dir.glob(pattern), key=lambda p: p.stat().st_mtime)


def _fit(row: str, manifest: Path, out: Path) -> tuple[dict[str, float], float, float, str]:
    args = _config_args(row, out)
    where = [
        *("--data.init_args.source.init_args.path", str(manifest)),
        *("--trainer.default_root_dir", str(out / row)),
    ]
    wall, cpu = _run("fit", row, [*args, *where])
    newest = _newest(out / row, "**/test_metrics.json")
    return json.loads(newest.read_text()), wall, cpu, " ".join(args)


def _product(row: str, manifest: Path, out: Path) -> tuple[float, int, float, float]:
    """The ``product`` row: accuracy, test rows, and the wall and CPU seconds of the two predicts."""
    seed = row.removeprefix("product")
    tables, wall, cpu = [], 0.0, 0.0
    for single in (f"{inputs}{seed}" for inputs in SINGLE):
        if not list((out / single).glob("**/checkpoints/best-*.ckpt")):
            sys.exit(f"{row}: fit the {single} row first (no best checkpoint under {out / single})")
        table = out / f"{single}_test_predictions.csv"
        args = [
            *_config_args(single, out),
            *("--data.init_args.source.init_args.path", str(manifest)),
            *("--trainer.default_root_dir", str(out / single), "--trainer.logger", "false"),
            *("--ckpt_path", str(_newest(out / single, "**/checkpoints/best-*.ckpt"))),
            *("--data.init_args.predict_split", "test", "--predictions.output", str(table)),
        ]
        seconds = _run("predict", single, args)
        wall, cpu = wall + seconds[0], cpu + seconds[1]
        tables.append(table)
    accuracy, rows = product_accuracy(tables)
    return accuracy, rows, wall, cpu


def product_accuracy(tables: list[Path]) -> tuple[float, int]:
    """Accuracy of the product of several models' class probabilities, from their ``predictions.csv``.

    Each id of any table is scored once: its class is the argmax of the summed log-probabilities of
    the tables that have a row for it. Returns (accuracy, number of ids).
    """
    log_probs: dict[str, dict[str, float]] = {}
    labels: dict[str, str] = {}
    for table in tables:
        with table.open(newline="") as f:
            for line in csv.DictReader(f):
                scores = log_probs.setdefault(line["id"], {})
                for column, value in line.items():
                    if column.startswith("prob_"):
                        name = column.removeprefix("prob_")
                        scores[name] = scores.get(name, 0.0) + math.log(max(float(value), 1e-12))
                labels[line["id"]] = line["label"]
    right = sum(max(scores, key=scores.__getitem__) == labels[i] for i, scores in log_probs.items())
    return right / len(log_probs), len(log_probs)


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far, DataLoader workers included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _features(manifest: Path, path: Path) -> None:
    """Decode every row as the example config does (val/test mode) into ``path`` (.npz)."""
    import numpy as np
    import torch

    from mmfuse.data import AudioDataModule, ImageDataModule

    torch.set_num_threads(1)  # per-sample ops are tiny: more threads only spin-wait (4x slower on 2 cores)
    modalities = _example()["data"]["init_args"]["modalities"]
    image = ImageDataModule(**modalities["image"]["init_args"])
    audio = AudioDataModule(**modalities["audio"]["init_args"])
    frames = 1 + audio.max_samples // audio.hop_length
    rows = list(csv.DictReader(manifest.open()))
    xs, audio_ok, labels, splits = [], [], [], []
    for row in rows:
        pixels = image.load(row["image"], manifest.parent, train=False)["pixel_values"].mean(0).flatten()
        mel = torch.zeros(TIME_BINS * audio.n_mels)
        if row["audio"]:
            spec = audio.load(row["audio"], manifest.parent, train=False)["input_features"]  # (F, M)
            padded = torch.full((frames, audio.n_mels), float(spec.min()))
            padded[: len(spec)] = spec[:frames]
            mel = torch.nn.functional.adaptive_avg_pool1d(padded.T[None], TIME_BINS)[0].T.flatten()
        xs.append(torch.cat([pixels, mel]).numpy())
        audio_ok.append(bool(row["audio"]))
        labels.append(int(row["label"]))
        splits.append(row["split"])
    n_pixels = len(pixels)
    np.savez(path, x=np.stack(xs), audio_ok=audio_ok, y=labels, split=splits, n_pixels=n_pixels)


LINEAR = r"""
import json, sys
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

d = np.load(sys.argv[1])
x, y, split, ok = d["x"], d["y"], d["split"], d["audio_ok"]
tr, va, te = (split == s for s in ("train", "val", "test"))
x[:, d["n_pixels"]:][~ok] = x[:, d["n_pixels"]:][tr & ok].mean(0)  # missing audio: the train mean
p = d["n_pixels"]
result = {}
for name, cols in (("linear", slice(None)), ("linear_image", slice(0, p)), ("linear_audio", slice(p, None))):
    xs = StandardScaler().fit(x[tr][:, cols]).transform(x[:, cols])
    fits = [LogisticRegression(C=c, max_iter=500).fit(xs[tr], y[tr]) for c in (0.001, 0.01, 0.1)]
    best = max(fits, key=lambda m: m.score(xs[va], y[va]))
    result[name] = {"test/acc": best.score(xs[te], y[te]), "C": best.C}
print(json.dumps(result))
"""


def _linear(manifest: Path, out: Path, python: str) -> tuple[dict[str, dict[str, float]], float]:
    """Logistic regression on both inputs (``linear``) and on each alone, with the wall time of all."""
    start = time.perf_counter()
    features = out / "features.npz"
    _features(manifest, features)
    script = out / "linear.py"
    script.write_text(LINEAR)
    done = subprocess.run([python, str(script), str(features)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout), time.perf_counter() - start


def main(manifest: Path, out: Path, rows: list[str], python: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    print("| run | configs after `mmfuse fit` | test acc | wall time | CPU time |")
    print("|---|---|---|---|---|")
    for row in rows:
        if row == "linear":
            if python is None:
                print("| linear | (skipped: no --sklearn-python) | | | |")
                continue
            results, wall = _linear(manifest, out, python)
            for name, metrics in results.items():
                shown = f"(logistic regression, C={metrics['C']} chosen on val)"
                print(f"| {name} | {shown} | {metrics['test/acc']:.3f} | {wall:.0f} s (all three) | |")
            continue
        if row.startswith("product"):
            accuracy, n, wall, cpu = _product(row, manifest, out)
            seed = row.removeprefix("product")
            shown = f"image{seed} x audio{seed}: their class probabilities multiplied ({n} test rows)"
            print(f"| {row} | {shown} | {accuracy:.3f} | {wall:.0f} s (predict) | {cpu:.0f} s |", flush=True)
            continue
        metrics, wall, cpu, shown = _fit(row, manifest, out)
        print(f"| {row} | `{shown}` | {metrics['test/acc']:.3f} | {wall:.0f} s | {cpu:.0f} s |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "rows",
        nargs="*",
        metavar="ROW",
        help=f"rows to run (default all, in this order): {', '.join(ROWS)}; <row>_seed<N> for another seed",
    )
    parser.add_argument(
        "--manifest", type=Path, default=Path("data/real_digits/manifest.csv"), help="the data"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/real_digits"), help="where the runs go")
    parser.add_argument("--sklearn-python", help="a Python with scikit-learn, for the linear row")
    args = parser.parse_args()
    another_seed = rf"({'|'.join([*FITS, 'product'])})_seed\d+"
    if unknown := [r for r in args.rows if r not in ROWS and not re.fullmatch(another_seed, r)]:
        parser.error(f"unknown rows {unknown}: choose from {', '.join(ROWS)}, or <row>_seed<N>")
    main(args.manifest.resolve(), args.out.resolve(), args.rows or ROWS, args.sklearn_python)

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
ROWS = [*FITS, "linear", *(f"{row}_seed1" for row in FITS)]
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


def _fit(row: str, manifest: Path, out: Path) -> tuple[dict[str, float], float, float, str]:
    run_dir = out / row
    args = ["--config", str(CONFIG.relative_to(ROOT))]
    inputs, _, seed = row.partition("_seed")
    if inputs in ("image", "audio"):
        override = out / f"{inputs}.yaml"
        _single_modality(inputs, override)
        # a row without this modality has nothing to read: left out and listed (skipped_samples.csv),
        # so a single modality is scored on the test rows that have it
        args += ["--config", str(override), "--data.init_args.on_bad_sample", "skip"]
    if seed:
        args += ["--seed_everything", seed]
    cmd = ["mmfuse", "fit", *args, "--data.init_args.source.init_args.path", str(manifest)]
    start, cpu_start = time.perf_counter(), _children_cpu()
    done = subprocess.run(
        [*cmd, "--trainer.default_root_dir", str(run_dir)], cwd=ROOT, capture_output=True, text=True
    )
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu_start
    if done.returncode != 0:
        sys.exit(f"{row}: mmfuse fit failed ({done.returncode}):\n{done.stderr[-3000:]}")
    newest = max(run_dir.glob("**/test_metrics.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text()), wall, cpu, " ".join(args)


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
        help=f"rows to run (default all): {', '.join(ROWS)}; <row>_seed<N> for another seed",
    )
    parser.add_argument(
        "--manifest", type=Path, default=Path("data/real_digits/manifest.csv"), help="the data"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/real_digits"), help="where the runs go")
    parser.add_argument("--sklearn-python", help="a Python with scikit-learn, for the linear row")
    args = parser.parse_args()
    another_seed = rf"({'|'.join(FITS)})_seed\d+"
    if unknown := [r for r in args.rows if r not in ROWS and not re.fullmatch(another_seed, r)]:
        parser.error(f"unknown rows {unknown}: choose from {', '.join(ROWS)}, or <row>_seed<N>")
    main(args.manifest.resolve(), args.out.resolve(), args.rows or ROWS, args.sklearn_python)

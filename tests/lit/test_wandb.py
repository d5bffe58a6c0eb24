"""Weights & Biases for real, offline: what a quickstart-sized fit logs, DDP, resume, no login prompt."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import yaml
from PIL import Image

from mmfuse.lit.wandb.ablation import log_ablation
from mmfuse.lit.wandb.logger import WandbLogger
from mmfuse.lit.wandb.offline import resolve_mode
from mmfuse.lit.wandb.run_identity import RUN_FILE, stored_run_id
from mmfuse.lit.wandb.val_samples import choose_rows
from mmfuse.main import main
from tests.conftest import quickstart_args
from tests.lit.wandb_records import read_run

ROOT = Path(__file__).resolve().parents[2]
MEDIA = ["--media.every_n_epochs=1", "--media.num_samples=4", "--media.attention_samples=2"]
STEPS = "--trainer.log_every_n_steps=2"  # 4 steps an epoch: log train/loss at all
CLASSES = ["zero", "one", "two", "three"]


@pytest.fixture(autouse=True)
def _new_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new user: no account, no WANDB_MODE, W&B's folder under default_root_dir (no WANDB_DIR)."""
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)


def _one_run(root: Path) -> Path:
    folders = sorted((root / "wandb").glob("offline-run-*"))
    assert len(folders) == 1, folders
    return folders[0]


def test_quickstart_fit_logs_one_offline_run(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["fit", *quickstart_args(synthetic_root, tmp_path), "--trainer.max_epochs=2", STEPS, *MEDIA])
    folder = _one_run(tmp_path)  # offline by itself (no credentials): one run, syncable
    run = read_run(folder)
    out = capsys.readouterr().out.strip().splitlines()

    # the end of the output: where the run is and how to upload it, then the run directory
    assert out[-2].startswith("W&B offline run; upload it with: wandb sync ")
    assert Path(out[-2].rsplit(" ", 1)[-1]).resolve() == folder.resolve()
    run_dir = tmp_path / "mmfuse" / run.run_id
    assert out[-1] == f"run directory {run_dir}"
    assert {p.name for p in run_dir.iterdir()} >= {
        "checkpoints",
        "config.yaml",
        "test_metrics.json",
        RUN_FILE,
    }
    assert json.loads((run_dir / RUN_FILE).read_text())["id"] == run.run_id

    # the CLI config, whole and nested; the model's hyper-parameters not repeated at the top
    assert run.config["model"]["fusion"]["class_path"] == "mmfuse.models.fusion.CrossModalAttentionFusion"
    assert run.config["model"]["fusion"]["init_args"]["num_heads"] == 4
    assert run.config["trainer"]["max_epochs"] == 2 and run.config["media"]["num_samples"] == 4
    assert not {"encoders", "fusion", "class_names", "num_classes", "modalities"} & set(run.config)
    assert "lightning_config.yaml" in run.files
    saved = yaml.safe_load((folder / "files" / "lightning_config.yaml").read_text())
    assert saved["model"]["fusion"] == run.config["model"]["fusion"]

    # metrics in the history, facts and results in the summary
    assert {"train/loss", "train/acc", "val/acc", "val/loss", "val/f1", "test/acc"} <= run.history_keys()
    assert "train/samples_per_sec" in run.history_keys()
    assert {f"params/{m}" for m in ("audio", "image", "text", "fusion", "head", "total")} <= set(run.summary)
    assert run.summary["params/total"] == sum(
        run.summary[f"params/{m}"] for m in ("audio", "image", "text", "fusion", "head")
    )
    assert {"best/val/acc", "best/epoch", "test/acc", "test/f1", "test/loss"} <= set(run.summary)
    assert run.summary["test/acc"] == json.loads((run_dir / "test_metrics.json").read_text())["test/acc"]

    # the prediction table, at both epochs, on the same samples; its media as files of the run
    tables = sorted((folder / "files" / "media" / "table" / "val").glob("predictions_*.table.json"))
    assert len(tables) == 2
    first, second = (json.loads(t.read_text()) for t in tables)
    columns = [
        "id",
        "audio",
        "image",
        "text",
        "label",
        "prediction",
        *(f"prob_{c}" for c in CLASSES),
        "epoch",
    ]
    assert first["columns"] == second["columns"] == columns
    assert [r[0] for r in first["data"]] == [r[0] for r in second["data"]] and len(first["data"]) == 4
    media = folder / "files" / "media"
    assert len(list((media / "images" / "val_samples").glob("image_*.png"))) == 4
    assert len(list((media / "audio" / "val_samples").glob("audio_*.wav"))) == 4

    # attention maps: every (query, key) pair of modalities, 2 samples, 2 epochs, labelled figures
    maps = list((media / "images" / "attention").glob("*.png"))
    pairs = {p.name.rsplit("_", 2)[0] for p in maps}
    assert pairs == {
        f"{q}_to_{k}" for q in ("audio", "image", "text") for k in ("audio", "image", "text") if q != k
    }
    assert len(maps) == 6 * 2 * 2
    with Image.open(maps[0]) as image:
        assert image.mode == "RGB" and image.size == (750, 600)

    # the confusion matrix at test: a W&B chart and a figure
    [matrix] = (media / "images" / "test").glob("confusion_matrix_image_*.png")
    assert any(k.startswith("test/confusion_matrix_table") for k in run.summary)
    with Image.open(matrix) as image:
        assert min(image.size) >= 300
    # every media file name is shell-safe: no "->", spaces, quotes, parentheses...
    names = [p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()]
    assert names and all(re.fullmatch(r"[A-Za-z0-9_./-]+", n) for n in names), names

    # the best and last checkpoints as model artifacts, with their metric, epoch and config
    models = {tuple(a["aliases"]): a["metadata"] for a in run.artifacts if a["type"] == "model"}
    best = next(meta for aliases, meta in models.items() if "best" in aliases)
    assert any("last" in aliases for aliases in models)
    assert best["monitor"] == "val/acc" and best["val/acc"] == pytest.approx(run.summary["best/val/acc"])
    assert best["epoch"] == run.summary["best/epoch"] and best["config"]["model"] == run.config["model"]


def test_resume_continues_the_same_run(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["fit", *quickstart_args(synthetic_root, tmp_path), "--media.num_samples=0"])
    first = read_run(_one_run(tmp_path))
    last = tmp_path / "mmfuse" / first.run_id / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["wandb_run"]["id"] == first.run_id
    assert stored_run_id(last) == first.run_id

    args = [*quickstart_args(synthetic_root, tmp_path), "--media.num_samples=0", "--trainer.max_epochs=2"]
    main(["fit", *args, "--ckpt_path", str(last)])
    folders = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and {read_run(f).run_id for f in folders} == {first.run_id}
    sync = capsys.readouterr().out.strip().splitlines()[-2]  # one command uploads both sessions
    assert sync.endswith(f"wandb sync {folders[0]} {folders[1]}")
    assert [p.name for p in (tmp_path / "mmfuse").iterdir()] == [first.run_id]  # one run directory
    resumed = read_run(next(f for f in folders if f != first.folder))
    steps = [row["trainer/global_step"] for row in resumed.history if "val/acc" in row]
    assert steps and min(steps) > max(r["trainer/global_step"] for r in first.history if "val/acc" in r)


def test_run_id_from_the_run_directory(tmp_path: Path) -> None:
    ckpt = tmp_path / "mmfuse" / "abc123" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, ckpt)  # a checkpoint without the id
    assert stored_run_id(ckpt) is None
    (ckpt.parent.parent / RUN_FILE).write_text(json.dumps({"id": "abc123"}))
    assert stored_run_id(ckpt) == "abc123"


def test_ddp_creates_one_run(synthetic_root: Path, tmp_path: Path) -> None:
    args = [*quickstart_args(synthetic_root, tmp_path), *MEDIA, "--trainer.enable_progress_bar=false"]
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
    result = subprocess.run(
        [sys.executable, "-m", "mmfuse", "fit", *args, *ddp],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,  # a prompt would fail, not hang
    )
    assert result.returncode == 0, result.stderr[-4000:]
    run = read_run(_one_run(tmp_path))  # one run for the job, not one per process
    assert [p.name for p in (tmp_path / "mmfuse").iterdir()] == [run.run_id]
    assert "test/acc" in run.summary and "val/acc" in run.history_keys()
    assert list((_one_run(tmp_path) / "files" / "media" / "table" / "val").glob("predictions_*.json"))


def test_offline_without_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    mode, reason = resolve_mode()
    assert mode == "offline" and reason is not None and "credentials" in reason
    monkeypatch.setenv("WANDB_MODE", "online")  # asked for, but impossible without a key: no prompt
    assert resolve_mode()[0] == "offline" and "WANDB_MODE=online" in str(resolve_mode()[1])
    for env_mode in ("offline", "disabled"):  # W&B applies these itself
        monkeypatch.setenv("WANDB_MODE", env_mode)
        assert resolve_mode() == (None, None)
    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    os.chmod(tmp_path / "netrc", 0o600)
    assert resolve_mode() == (None, None)  # logged in with `wandb login`: online
    assert resolve_mode(offline=True) == ("offline", None)
    (tmp_path / "netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "y" * 40)
    assert resolve_mode() == (None, None)


def test_fixed_samples_are_chosen_by_id_and_class() -> None:
    ids = ["s9", "s1", "s5", "s3", "s7", "s2"]
    labels = ["a", "a", "b", "b", "c", "a"]
    assert choose_rows(ids, labels, 4) == [1, 3, 4, 5]  # s1 (a), s3 (b), s7 (c), then s2 (a)
    assert choose_rows(list(reversed(ids)), list(reversed(labels)), 4) == [4, 2, 1, 0]  # the same ids


def test_ablation_table_in_the_summary(tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=str(tmp_path))
    trainer = SimpleNamespace(loggers=[logger], is_global_zero=True)
    rows = [
        {
            "name": "audio+image",
            "modalities": ["audio", "image"],
            "metrics": {"test/acc": 0.9},
            "samples_without_input": 0,
        },
        {"name": "audio", "modalities": ["audio"], "metrics": {"test/acc": 0.5}, "samples_without_input": 3},
    ]
    where = log_ablation(trainer, rows)  # type: ignore[arg-type]
    run = read_run(_one_run(tmp_path))
    assert where is not None and where.startswith("offline run; upload it with: wandb sync ")
    assert (
        run.summary["ablation/audio+image/test/acc"] == 0.9 and run.summary["ablation/audio/test/acc"] == 0.5
    )
    assert run.summary["test/acc"] == 0.9  # the full set's, not the last subset's
    assert run.summary["ablation/_type"] == "table-file" and run.summary["ablation/nrows"] == 2


def _printed_logger(capsys: pytest.CaptureFixture[str], *configs: str) -> dict[str, object]:
    with pytest.raises(SystemExit):
        main(["fit", *(a for c in configs for a in ("--config", c)), "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)["trainer"]["logger"]


def test_quickstart_uses_the_wandb_logger_config(capsys: pytest.CaptureFixture[str]) -> None:
    quickstart = _printed_logger(capsys, "configs/quickstart.yaml")
    assert quickstart["class_path"] == "mmfuse.lit.wandb.logger.WandbLogger"
    assert _printed_logger(capsys, "configs/quickstart.yaml", "configs/logger/wandb.yaml") == quickstart
    csv = _printed_logger(capsys, "configs/quickstart.yaml", "configs/logger/csv.yaml")
    assert csv["class_path"] == "pytorch_lightning.loggers.CSVLogger"


class FailOnTrainStart(pl.Callback):
    """A failure after the W&B run started (a data or config mistake stops the command before it)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise RuntimeError("planted failure")


def test_a_failed_fit_finishes_its_run(synthetic_root: Path, tmp_path: Path) -> None:
    import wandb

    fail = '--trainer.callbacks+={"class_path": "tests.lit.test_wandb.FailOnTrainStart"}'
    with pytest.raises(RuntimeError, match="planted failure"):
        main(["fit", *quickstart_args(synthetic_root, tmp_path), fail])
    assert wandb.run is None  # finished, not left open for the next run in this process to reuse
    assert read_run(_one_run(tmp_path)).run_id  # and written to the end (its exit record)


def test_ablation_confusion_matrices_are_named_by_subset() -> None:
    """Under `ablate`, each subset's matrix has its own key and a title naming the subset; a plain
    test keeps the plain key."""
    from mmfuse.lit.wandb.media import _confusion_payload

    counts = torch.tensor([[3, 1], [0, 2]])
    plain = _confusion_payload(counts, ["a", "b"])
    assert set(plain) == {"test/confusion_matrix", "test/confusion_matrix_image"}
    ablated = _confusion_payload(counts, ["a", "b"], frozenset({"image", "audio"}))
    assert set(ablated) == {"test/confusion_matrix/audio_image", "test/confusion_matrix_image/audio_image"}
    # every subset of an ablation: six keys, none of one subset taken by another's
    subsets = [{"audio", "image"}, {"audio"}, {"image"}]
    keys = [k for s in subsets for k in _confusion_payload(counts, ["a", "b"], frozenset(s))]
    assert len(set(keys)) == len(keys) == 6
    chart = ablated["test/confusion_matrix/audio_image"]
    assert chart.spec.string_fields["title"] == "Test confusion matrix, audio+image only"
    assert "audio+image only (ablation)" in ablated["test/confusion_matrix_image/audio_image"]._caption
    # samples with none of the subset's modalities are counted in the matrix: the title says how many
    audio = _confusion_payload(counts, ["a", "b"], frozenset({"audio"}), without=3)
    assert audio["test/confusion_matrix/audio"].spec.string_fields["title"] == (
        "Test confusion matrix, audio only, 3 without audio"
    )

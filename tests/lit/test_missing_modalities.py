"""Missing modalities end to end: masks reach the fuser, absent inputs change nothing, modality
dropout, test metrics by presence pattern, ``mmfuse ablate``, and DDP with a modality absent."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from mmfuse.data import ManifestSource, MultimodalDataModule
from mmfuse.main import main
from mmfuse.models.modality_dropout import drop_modalities
from mmfuse.types import Batch
from tests.conftest import quickstart_args
from tests.data.messy import modalities, tiny_module

ROOT = Path(__file__).resolve().parents[2]


def _blank(manifest: Path, cells: dict[int, dict[str, str]]) -> Path:
    rows = list(csv.DictReader(manifest.open()))
    for index, change in cells.items():
        rows[index].update(change)
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _val_batch(manifest: Path) -> Batch:
    # val rows: s8 without audio, s9 without image
    data = MultimodalDataModule(
        ManifestSource(str(_blank(manifest, {8: {"audio": ""}, 9: {"image": ""}}))), modalities()
    )
    data.setup("fit")
    return next(iter(data.val_dataloader()))


def test_presence_reaches_the_fuser_and_absent_tokens_get_no_attention(small_manifest: Path) -> None:
    batch = _val_batch(small_manifest)
    assert batch.present["audio"].tolist() == [False, True] and batch.present["image"].tolist() == [
        True,
        False,
    ]
    module = tiny_module("cross").eval()
    seen: list[dict[str, torch.Tensor]] = []
    module.model.fusion.register_forward_pre_hook(lambda _, args: seen.append(dict(args[1])))
    out = module(batch)
    assert {m: p.tolist() for m, p in seen[0].items()} == {m: p.tolist() for m, p in batch.present.items()}
    T_audio = module.model.encode(batch.inputs)["audio"].tokens.shape[1]
    weights = out.fused.attention["image->others"]  # (B, H, T_image, T_audio + T_text)
    assert weights[0, :, :, :T_audio].abs().sum() == 0  # s8 has no audio: its image attends to none of it
    assert weights[1, :, :, :T_audio].sum() > 0


@pytest.mark.parametrize("fusion", ["concat", "late", "cross"])
def test_garbage_in_an_absent_modality_changes_nothing(small_manifest: Path, fusion: str) -> None:
    batch = _val_batch(small_manifest)
    module = tiny_module(fusion).eval()
    with torch.no_grad():
        before = module(batch).logits["label"]
        audio = batch.inputs["audio"]
        audio["input_features"][0] = torch.nan  # s8's audio is absent: fill it with garbage
        audio["feature_mask"][0] = True
        batch.inputs["image"]["pixel_values"][1] = 1e6  # s9's image is absent
        after = module(batch).logits["label"]
    assert torch.isfinite(after).all()
    torch.testing.assert_close(after, before)


def test_modality_dropout_never_drops_every_modality() -> None:
    torch.manual_seed(0)
    patterns = torch.tensor(list(itertools.product([False, True], repeat=3)) * 500)  # (4000, 3)
    present = {m: patterns[:, i] for i, m in enumerate(["audio", "image", "text"])}
    for p in (0.5, 0.95):
        kept = drop_modalities(present, p)
        k = torch.stack([kept[m] for m in sorted(present)], dim=1)
        assert not (k & ~patterns).any()  # only present modalities are kept
        assert torch.equal(k.any(dim=1), patterns.any(dim=1))  # one survives wherever one was present
    full = {m: torch.ones(20000, dtype=torch.bool) for m in ("audio", "image", "text")}
    kept = drop_modalities(full, 0.5)
    for m in full:  # kept with 1 - p, plus a third of the 1/8 of samples that lost all three
        assert abs(kept[m].float().mean().item() - (0.5 + 0.125 / 3)) < 0.02
    assert all(torch.equal(drop_modalities(full, 0.0)[m], full[m]) for m in full)


def test_modality_dropout_only_in_training(small_manifest: Path) -> None:
    batch = _val_batch(small_manifest)
    batch.present = {m: torch.ones(64, dtype=torch.bool) for m in batch.present}
    module = tiny_module(modality_dropout=0.5)
    module.train()
    train_present = module.effective_present(batch)
    assert not all(p.all() for p in train_present.values())
    module.eval()
    assert all(p.all() for p in module.effective_present(batch).values())
    with pytest.raises(ValueError, match="modality_dropout"):
        tiny_module(modality_dropout=1.0)


def test_test_metrics_by_presence_pattern(small_manifest: Path, tmp_path: Path) -> None:
    _blank(small_manifest, {10: {"audio": ""}})  # test rows: s10 without audio, s11 complete
    data = MultimodalDataModule(ManifestSource(str(small_manifest)), modalities(), batch_size=4)
    trainer = pl.Trainer(
        default_root_dir=tmp_path, accelerator="cpu", logger=False, enable_progress_bar=False
    )
    [metrics] = trainer.test(tiny_module(), datamodule=data, verbose=False)
    assert metrics["test/presence/audio+image+text/n"] == 1 and metrics["test/presence/image+text/n"] == 1
    accs = [metrics[f"test/presence/{p}/acc"] for p in ("audio+image+text", "image+text")]
    assert sum(accs) / 2 == pytest.approx(metrics["test/acc"])


def test_ablate_covers_every_subset(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    args = quickstart_args(synthetic_root, tmp_path / "fit", "configs/logger/csv.yaml")
    main(["fit", *args])
    [metrics_file] = (tmp_path / "fit").glob("*/*/test_metrics.json")
    fitted = json.loads(metrics_file.read_text())
    out = tmp_path / "ablation.json"
    args = quickstart_args(synthetic_root, tmp_path / "ablate", "configs/logger/csv.yaml")
    main(["ablate", *args, "--ckpt_path", fitted["checkpoint"], "--output", str(out)])
    table = json.loads(out.read_text())
    names = ["audio", "image", "text"]
    expected = {c for n in (1, 2, 3) for c in itertools.combinations(names, n)}
    assert {tuple(r["modalities"]) for r in table["subsets"]} == expected and len(table["subsets"]) == 7
    by_name = {r["name"]: r for r in table["subsets"]}
    assert by_name["audio+image+text"]["metrics"]["test/acc"] == pytest.approx(fitted["test/acc"])
    assert all(
        0 <= r["metrics"]["test/acc"] <= 1 and r["samples_without_input"] == 0 for r in table["subsets"]
    )
    printed = capsys.readouterr().out
    assert all(f"│ {name} " in printed for name in by_name)


def test_ddp_fit_with_a_modality_absent_from_every_train_batch(small_manifest: Path, tmp_path: Path) -> None:
    # audio absent from every train row (present in val/test), one broken image skipped: two
    # processes, no find_unused_parameters, every encoder still gets a gradient slot each step
    rows = list(csv.DictReader(small_manifest.open()))
    _blank(
        small_manifest, {i: {"audio": ""} for i in range(8)} | {3: {"audio": "", "image": "media/gone.png"}}
    )
    assert len(rows) == 12
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("ddp_missing_script.py")),
            str(small_manifest),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    assert report["world_size"] == 2 and report["find_unused_parameters"] is False
    assert report["skipped"] == [["train", "4", "s3", "image"]]  # found by the sharded check, listed once
    assert report["trained_steps"] > 0 and report["test_acc_finite"]


def test_an_ablation_figure_says_how_many_samples_had_none_of_its_modalities(
    small_manifest: Path, tmp_path: Path
) -> None:
    """The test confusion matrix of `ablate`'s audio-only subset counts the test row without audio
    (answered without input): its title and caption say so; the full set's say nothing."""
    from mmfuse.lit.wandb.logger import WandbLogger
    from mmfuse.lit.wandb.media import WandbMedia
    from tests.lit.wandb_records import read_run

    _blank(small_manifest, {10: {"audio": ""}})  # test rows: s10 without audio, s11 complete
    data = MultimodalDataModule(ManifestSource(str(small_manifest)), modalities(), batch_size=1)
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        logger=WandbLogger(save_dir=str(tmp_path)),  # its run folder (wandb_run.json) under tmp_path
        callbacks=[WandbMedia(num_samples=0)],
        enable_progress_bar=False,
    )
    module = tiny_module()
    for subset in ({"audio", "image", "text"}, {"audio"}):
        module.keep_modalities = frozenset(subset)
        trainer.test(module, datamodule=data, verbose=False)
    run_id = trainer.loggers[0].experiment.id
    trainer.loggers[0].finish()
    [folder] = Path(os.environ["WANDB_DIR"]).glob(f"**/offline-run-*-{run_id}")  # the tests' W&B folder
    history = {k: v for row in read_run(folder).history for k, v in row.items()}
    audio = history["test/confusion_matrix_image/audio/caption"]
    assert "; 1 samples have no audio and are answered without input" in audio
    assert "have no" not in history["test/confusion_matrix_image/audio_image_text/caption"]

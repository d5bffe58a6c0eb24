"""The mmfuse command with checkpoints from elsewhere: URLs (safe, cached by the whole URL), the classes
of the checkpoint at evaluation, a truncated checkpoint."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mmfuse.main import main
from tests.conftest import quickstart_args
from tests.loopback import serve, write_evil

ROOT = Path(__file__).resolve().parents[1]
CSV = "configs/logger/csv.yaml"  # no W&B: faster, and the run directory is found the same way


@pytest.fixture(scope="module")
def trained(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The checkpoints folder of one tiny quickstart fit (best-epoch000.ckpt, last.ckpt)."""
    root = tmp_path_factory.mktemp("fit")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        main(["fit", *quickstart_args(synthetic_root, root, CSV)])
    [folder] = root.glob("*/*/checkpoints")
    yield folder


@pytest.fixture(autouse=True)
def _setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root
    monkeypatch.setenv("MMFUSE_CACHE", str(tmp_path / "cache"))


def _metrics(root: Path) -> dict[str, object]:
    """The newest test_metrics.json under ``root`` (evaluations of one run accumulate in <run>/eval/)."""
    found = max(root.rglob("test_metrics.json"), key=lambda p: p.stat().st_mtime_ns)
    return dict(json.loads(found.read_text()))


def _fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command, which must fail; returns its message (the exception's, or what was printed)."""
    with pytest.raises((ValueError, SystemExit)) as info:  # CheckpointError and DataError are ValueErrors
        main(args)
    if isinstance(info.value, SystemExit):
        assert info.value.code not in (0, None)
    captured = capsys.readouterr()
    return f"{info.value}\n{captured.out}\n{captured.err}"


def test_two_urls_with_one_file_name_give_each_checkpoints_own_metrics(
    synthetic_root: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fitted = json.loads((trained.parent / "test_metrics.json").read_text())  # the fit's own
    best = next(trained.glob("best-*.ckpt"))
    # run b: the same model, but its head always answers the last class ("three")
    ckpt = torch.load(best, weights_only=True)
    head = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("model.heads.label.")}
    for key, value in head.items():
        ckpt["state_dict"][key] = torch.zeros_like(value)
    ckpt["state_dict"][next(k for k in head if k.endswith("bias"))][-1] = 10.0
    (tmp_path / "srv" / "a").mkdir(parents=True)
    (tmp_path / "srv" / "b").mkdir(parents=True)
    shutil.copy(best, tmp_path / "srv" / "a" / "last.ckpt")
    torch.save(ckpt, tmp_path / "srv" / "b" / "last.ckpt")
    with (synthetic_root / "manifest.csv").open() as f:
        labels = [r["label"] for r in csv.DictReader(f) if r["split"] == "test"]
    always_last = labels.count("three") / len(labels)
    assert always_last != pytest.approx(fitted["test/acc"])  # else the test could not tell them apart

    with serve(tmp_path / "srv") as server:
        for run in ("a", "b"):
            url = f"{server.url}/{run}/last.ckpt"
            main(["test", *quickstart_args(synthetic_root, tmp_path / run, CSV), "--ckpt_path", url])
            assert server.gets(f"/{run}/last.ckpt") == 1
            out = capsys.readouterr().out
            assert f"checkpoint: downloaded {url} -> {tmp_path / 'cache' / 'checkpoints'}" in out
            assert _metrics(tmp_path / run)["checkpoint"] == url
    assert _metrics(tmp_path / "a")["test/acc"] == pytest.approx(fitted["test/acc"])
    assert _metrics(tmp_path / "b")["test/acc"] == pytest.approx(always_last)


@pytest.mark.parametrize("command", ["test", "ablate", "fit"])
def test_a_url_checkpoint_that_would_run_code_is_refused(
    command: str,
    synthetic_root: Path,
    trained: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = tmp_path / "payload-ran"
    base = torch.load(next(trained.glob("best-*.ckpt")), weights_only=True)  # a real checkpoint, and more
    write_evil(tmp_path / "srv" / "evil.ckpt", marker, base)
    with serve(tmp_path / "srv") as server:
        url = f"{server.url}/evil.ckpt"
        args = [*quickstart_args(synthetic_root, tmp_path / "run", CSV), "--ckpt_path", url]
        message = _fails(["ablate", *args] if command == "ablate" else [command, *args], capsys)
    assert not marker.exists()
    assert f"checkpoint {url} was refused" in message and "weights_only=True" in message


def _manifest(synthetic_root: Path, folder: Path, name: str, change: dict[str, str] | None = None) -> Path:
    """A copy of the synthetic manifest (media copied beside it) with some labels changed or dropped."""
    for media in ("images", "audio"):
        if not (folder / media).exists():
            shutil.copytree(synthetic_root / media, folder / media)
    with (synthetic_root / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    rows = [{**r, "label": (change or {}).get(r["label"], r["label"])} for r in rows]
    rows = [r for r in rows if r["label"] != "-"]
    path = folder / name
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _with_manifest(tmp_path: Path, manifest: Path) -> list[str]:
    config = tmp_path / f"{manifest.stem}.yaml"
    config.write_text(
        "data:\n  init_args:\n    source:\n      class_path: mmfuse.data.ManifestSource\n"
        f"      init_args: {{path: {manifest}}}\n"
    )
    return ["--config", str(config)]


def test_evaluation_takes_the_classes_from_the_checkpoint(
    synthetic_root: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = str(next(trained.glob("best-*.ckpt")))  # 4 classes: zero, one, two, three
    common = [*quickstart_args(synthetic_root, tmp_path / "run", CSV), "--ckpt_path", best]

    # a manifest with 2 of the 4 classes: tested with the checkpoint's 4 outputs
    two = _manifest(synthetic_root, tmp_path, "two.csv", {"zero": "-", "three": "-"})
    main(["test", *common, *_with_manifest(tmp_path, two)])
    assert 0 <= float(str(_metrics(trained.parent / "eval")["test/acc"])) <= 1  # under the checkpoint's run

    # an unlabelled manifest predicts, one probability per class of the checkpoint
    unlabelled = _manifest(
        synthetic_root, tmp_path, "unlabelled.csv", {c: "" for c in ("one", "two", "three")}
    )
    out = tmp_path / "predictions.csv"
    main(["predict", *common, *_with_manifest(tmp_path, unlabelled), "--predictions.output", str(out)])
    with out.open() as f:
        header = next(csv.reader(f))
    assert [h for h in header if h.startswith("prob_")] == ["prob_zero", "prob_one", "prob_two", "prob_three"]

    # a label the checkpoint does not know: an error naming the row and the id
    bird = _manifest(synthetic_root, tmp_path, "bird.csv", {"two": "bird"})
    message = _fails(["test", *common, *_with_manifest(tmp_path, bird)], capsys)
    assert "bird.csv, row " in message and ", id '" in message
    assert "target 'bird' is not one of the classes ['zero', 'one', 'two', 'three']" in message


def test_resume_from_a_truncated_checkpoint_names_the_others(
    synthetic_root: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "interrupted" / "checkpoints"
    shutil.copytree(trained, folder)
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 3])  # a copy cut short
    args = [*quickstart_args(synthetic_root, tmp_path / "run", CSV), "--ckpt_path", str(folder / "last.ckpt")]
    message = _fails(["fit", *args], capsys)
    assert f"checkpoint {folder / 'last.ckpt'} cannot be read: it is truncated" in message
    best = next(trained.glob("best-*.ckpt")).name
    assert f"other checkpoints in {folder}: {best}" in message


def test_evaluation_reads_text_with_the_checkpoints_vocabulary(
    synthetic_root: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the train split's texts changed since training: a vocabulary learnt afresh would be larger, and
    # the text encoder sized by it would not load the checkpoint's embedding
    best = next(trained.glob("best-*.ckpt"))
    fitted = json.loads((trained.parent / "test_metrics.json").read_text())
    path = _manifest(synthetic_root, tmp_path, "new_words.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        if row["split"] == "train":
            row["text"] += f" novel{i}"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    args = [*quickstart_args(synthetic_root, tmp_path / "run", CSV), "--ckpt_path", str(best)]
    main(["test", *args, *_with_manifest(tmp_path, path)])
    assert "vocab_size" not in capsys.readouterr().err  # no note: the checkpoint's vocabulary sized it
    # the test rows are unchanged: the same metrics as the fit's own test of this checkpoint
    assert _metrics(trained.parent / "eval")["test/acc"] == pytest.approx(fitted["test/acc"])

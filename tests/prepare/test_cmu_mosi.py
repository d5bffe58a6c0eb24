"""CMU-MOSI / MOSEI converter: the aligned pickle -> pooled features and three targets -> check-data."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.prepare.conftest import check_data, load_script, read_rows

CONFIG = "configs/benchmarks/mosi.yaml"
T = 6  # time steps (the release has 50)
SENTIMENTS = {"train": [-2.6, -1.4, 0.0, 0.4, 1.8, 3.0], "valid": [-0.6, 2.2], "test": [-3.0, 1.2]}


def write_release(folder: Path, audio_dim: int = 5) -> Path:
    """``mosi_data.pkl``: per split ``text (N, T, 300)``, ``audio``, ``vision``, ``labels (N, 1, 1)``,
    ``id``; every sequence zero-padded before its first word, as the aligned release is."""
    rng = np.random.default_rng(0)
    release = {}
    for split, sentiments in SENTIMENTS.items():
        n = len(sentiments)
        arrays = {
            m: rng.standard_normal((n, T, d)).astype(np.float32)
            for m, d in (("text", 300), ("audio", audio_dim), ("vision", 20))
        }
        for i in range(n):
            for array in arrays.values():
                array[i, : i % 3] = 0.0  # i % 3 padding steps
        arrays["audio"][0, -1, 0] = -np.inf  # MOSEI's audio has -inf values: one per split
        labels = np.array(sentiments, dtype=np.float32).reshape(n, 1, 1)
        ids = np.array([[f"vid{split}{i}", str(i)] for i in range(n)])
        release[split] = {**arrays, "labels": labels, "id": ids}
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "mosi_data.pkl").open("wb") as f:
        pickle.dump(release, f)
    return folder


def test_converts_the_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release, out = write_release(tmp_path / "download"), tmp_path / "mosi"
    assert load_script("cmu_mosi").main(["--root", str(release), "--dataset", "mosi", "--out", str(out)]) == 0
    rows = read_rows(out / "manifest.csv")
    assert [r["split"] for r in rows] == ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    assert [r["id"] for r in rows[:2]] == ["vidtrain0_0", "vidtrain1_1"]
    train = [r for r in rows if r["split"] == "train"]
    assert [r["sentiment7"] for r in train] == ["-3", "-1", "0", "0", "2", "3"]
    assert [r["polarity"] for r in train] == ["negative", "negative", "", "positive", "positive", "positive"]
    assert float(train[1]["sentiment"]) == pytest.approx(-1.4)
    # each modality: the mean over the steps from the first word on (row 1 has 1 padding step)
    with (release / "mosi_data.pkl").open("rb") as f:
        data = pickle.load(f)["train"]
    vision = np.array(train[1]["vision"].split(), dtype=float)
    assert np.allclose(vision, data["vision"][1, 1:].mean(axis=0), atol=1e-5)
    assert not np.allclose(vision, data["vision"][1].mean(axis=0), atol=1e-5)  # padding not averaged in
    audio = np.array(train[0]["audio"].split(), dtype=float)  # -inf counted as 0
    assert np.isfinite(audio).all() and audio[0] == pytest.approx(
        data["audio"][0, :-1, 0].sum() / T, abs=1e-5
    )
    assert "3 non-finite feature values set to 0" in capsys.readouterr().out
    check_data(CONFIG, out / "manifest.csv")


def test_other_feature_sizes_are_passed_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release, out = write_release(tmp_path / "download", audio_dim=7), tmp_path / "mosi"
    load_script("cmu_mosi").main(["--root", str(release), "--out", str(out)])
    printed = capsys.readouterr().out
    override = "--data.init_args.modalities.audio.init_args.num_features 7"
    assert f"mmfuse check-data --config {CONFIG} {override}" in printed
    check_data(CONFIG, out / "manifest.csv", *override.split())


def test_a_missing_pickle_or_array_is_named(tmp_path: Path) -> None:
    script = load_script("cmu_mosi")
    with pytest.raises(script.c.PrepareError, match=r"mosei_senti_data\.pkl: not found"):
        script.main(["--root", str(tmp_path), "--dataset", "mosei", "--out", str(tmp_path / "out")])
    release = write_release(tmp_path / "download")
    with (release / "mosi_data.pkl").open("rb") as f:
        data = pickle.load(f)
    del data["valid"]["vision"]
    with (release / "mosi_data.pkl").open("wb") as f:
        pickle.dump(data, f)
    with pytest.raises(script.c.PrepareError, match="split 'valid' has no 'vision' array"):
        script.main(["--root", str(release), "--out", str(tmp_path / "out")])

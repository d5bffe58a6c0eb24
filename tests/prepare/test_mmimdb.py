"""MM-IMDb converter: a tiny release in the official layout -> manifest -> check-data -> a short fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmfuse.main import main
from tests.prepare.conftest import check_data, load_script, read_rows

CONFIG = "configs/benchmarks/mmimdb.yaml"
MOVIES = {  # id: (split.json key, genres, plots)
    "0000001": ("train", ["Comedy", "Drama"], ["A short plot.", "A much longer plot about a family feud."]),
    "0000002": ("train", ["Horror"], ["Something lurks in the house."]),
    "0000003": ("train", ["News"], ["Only a genre outside the 23."]),
    "0000004": ("train", ["Drama", "Film-Noir", "Adult"], ["A detective in the rain."]),
    "0000005": ("dev", ["Comedy"], ["Two friends on a road trip."]),
    "0000006": ("dev", ["Horror", "Drama"], ["A haunted hospital."]),
    "0000007": ("test", ["Drama"], ["A courtroom drama."]),
    "0000008": ("test", ["Comedy", "Horror"], ["A funny ghost."]),
}


def write_release(root: Path) -> Path:
    """``mmimdb/split.json`` and ``mmimdb/dataset/<id>.json|.jpeg``, as the archive unpacks."""
    dataset = root / "mmimdb" / "dataset"
    dataset.mkdir(parents=True)
    splits: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for i, (movie_id, (split, genres, plots)) in enumerate(MOVIES.items()):
        splits[split].append(movie_id)
        meta = {"title": f"Movie {i}", "genres": genres, "plot": plots, "imdb_id": movie_id}
        (dataset / f"{movie_id}.json").write_text(json.dumps(meta))
        # posters are not square
        pixels = np.random.default_rng(i).integers(0, 255, (30 + i, 20, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(dataset / f"{movie_id}.jpeg")
    (root / "mmimdb" / "split.json").write_text(json.dumps(splits))
    return root / "mmimdb"


def test_converts_the_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release, out = write_release(tmp_path / "download"), tmp_path / "mmimdb"
    assert load_script("mmimdb").main(["--root", str(release), "--out", str(out)]) == 0
    rows = read_rows(out / "manifest.jsonl")
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == set(MOVIES) - {"0000003"}  # no genre among the 23: left out
    assert [by_id[i]["split"] for i in ("0000001", "0000005", "0000007")] == ["train", "val", "test"]
    assert by_id["0000001"]["genres"] == "Drama|Comedy"  # the 23 genres' order, not the file's
    assert by_id["0000004"]["genres"] == "Drama|Film-Noir"  # Adult is not one of the 23
    assert by_id["0000001"]["text"] == "A much longer plot about a family feud."  # the longest plot
    poster = release / "dataset" / "0000002.jpeg"
    assert (out / by_id["0000002"]["image"]).read_bytes() == poster.read_bytes()
    printed = capsys.readouterr().out
    assert "1 left out" in printed and f"mmfuse fit --config {CONFIG}" in printed
    check_data(CONFIG, out / "manifest.jsonl")


def test_a_missing_poster_is_named(tmp_path: Path) -> None:
    release = write_release(tmp_path / "download")
    (release / "dataset" / "0000006.jpeg").unlink()
    script = load_script("mmimdb")
    with pytest.raises(script.c.PrepareError, match=r"0000006\.jpeg: not found"):
        script.main(["--root", str(release), "--out", str(tmp_path / "out")])


def test_the_config_trains_on_the_converted_data(tmp_path: Path) -> None:
    """The image + text recipe trains through its config (tiny dims, one epoch), and tests."""
    release, out = write_release(tmp_path / "download"), tmp_path / "mmimdb"
    load_script("mmimdb").main(["--root", str(release), "--out", str(out)])
    tiny = "{d_model: 16, num_heads: 2, num_layers: 1}"
    main(
        [
            "fit",
            "--config", CONFIG,
            "--config", "configs/logger/csv.yaml",
            "--data.init_args.source.init_args.path", str(out / "manifest.jsonl"),
            "--data.init_args.modalities.image.init_args.size=16",
            "--data.init_args.num_workers=0",
            "--data.init_args.batch_size=4",
            "--model.encoders.image.init_args.d_model=16",
            "--model.encoders.image.init_args.channels=[8]",
            "--model.encoders.text.init_args.d_model=16",
            "--model.encoders.text.init_args.num_heads=2",
            "--model.encoders.text.init_args.num_layers=1",
            f"--model.fusion.init_args={tiny}",
            "--trainer.max_epochs=1",
            "--trainer.accelerator=cpu",
            "--trainer.default_root_dir", str(tmp_path / "runs"),
        ]
    )  # fmt: skip
    [metrics_file] = (tmp_path / "runs").glob("**/test_metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert {"test/f1", "test/acc", "test/loss"} <= set(metrics)

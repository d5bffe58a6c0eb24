"""Hateful Memes converter: a tiny release in the official layout -> manifest -> check-data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_png
from tests.prepare.conftest import check_data, load_script, read_rows

CONFIG = "configs/benchmarks/hateful_memes.yaml"
FILES = {  # file: [(id, label)]
    "train.jsonl": [(1235, 0), (42953, 1), (50123, 0), (60001, 1)],
    "dev_seen.jsonl": [(7001, 1), (7002, 0)],
    "dev_unseen.jsonl": [(7001, 1), (8003, 0)],  # phase 2's unseen set shares memes with dev_seen
    "test_seen.jsonl": [(9001, 0), (9002, 1)],
}


def write_release(root: Path) -> Path:
    """``data/img/<5 digits>.png`` and the ``.jsonl`` files: one object per line, integer id and label."""
    data = root / "data"
    for i, (file, memes) in enumerate(FILES.items()):
        lines = []
        for meme_id, label in memes:
            image = f"img/{meme_id:05d}.png"  # 1235 -> img/01235.png
            write_png(data / image, seed=meme_id % 1000 + i)
            lines.append(
                json.dumps({"id": meme_id, "img": image, "label": label, "text": f"meme {meme_id} says hi"})
            )
        (data / file).parent.mkdir(parents=True, exist_ok=True)
        (data / file).write_text("\n".join(lines) + "\n")
    return data


def test_converts_the_release(tmp_path: Path) -> None:
    release, out = write_release(tmp_path / "download"), tmp_path / "hateful_memes"
    assert load_script("hateful_memes").main(["--root", str(release), "--out", str(out)]) == 0
    rows = read_rows(out / "manifest.jsonl")
    assert [(r["id"], r["split"], r["label"]) for r in rows] == [
        ("1235", "train", "not_hateful"),
        ("42953", "train", "hateful"),
        ("50123", "train", "not_hateful"),
        ("60001", "train", "hateful"),
        ("7001", "val", "hateful"),
        ("7002", "val", "not_hateful"),
        ("9001", "test", "not_hateful"),
        ("9002", "test", "hateful"),
    ]
    assert rows[0]["image"] == "img/01235.png" and (out / rows[0]["image"]).is_file()
    assert rows[1]["text"] == "meme 42953 says hi"
    check_data(CONFIG, out / "manifest.jsonl")


def test_the_unseen_sets_and_a_meme_in_two_splits(tmp_path: Path) -> None:
    release, script = write_release(tmp_path / "download"), load_script("hateful_memes")
    out = tmp_path / "unseen"
    script.main(["--root", str(release), "--out", str(out), "--val", "dev_unseen.jsonl"])
    assert [r["id"] for r in read_rows(out / "manifest.jsonl") if r["split"] == "val"] == ["7001", "8003"]
    with pytest.raises(
        script.c.PrepareError, match=r"dev_seen\.jsonl: meme 7001 is also in dev_unseen\.jsonl"
    ):
        script.main(
            [
                "--root",
                str(release),
                "--out",
                str(out),
                "--val",
                "dev_unseen.jsonl",
                "--test",
                "dev_seen.jsonl",
            ]
        )


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    release, script = write_release(tmp_path / "download"), load_script("hateful_memes")
    (release / "img" / "09002.png").unlink()
    with pytest.raises(script.c.PrepareError, match=r"09002\.png: not found \(the image of meme 9002"):
        script.main(["--root", str(release), "--out", str(tmp_path / "out")])
    (release / "test_seen.jsonl").unlink()
    with pytest.raises(script.c.PrepareError, match=r"test_seen\.jsonl: not found"):
        script.main(["--root", str(release), "--out", str(tmp_path / "out")])

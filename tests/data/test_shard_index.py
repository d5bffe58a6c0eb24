"""The index beside a shard: read instead of a scan when it matches, never trusted when the shard changed."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

import mmfuse.data.sources.shards as shards_module
from mmfuse.commands.index import main as index_main
from mmfuse.commands.pack import pack
from mmfuse.data import ManifestSource
from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.sources.shard_files import ShardSample, scan
from mmfuse.data.sources.shards import ShardSource
from tests.data.test_shards import _modalities, _pixels, img2dataset, sample, write_shard
from tests.loopback import serve

__all__ = ["img2dataset"]  # the fixture, shared with test_shards.py


def _source(folder: Path | str) -> ShardSource:
    return ShardSource(train=f"{folder}/train-{{000..001}}.tar", val=f"{folder}/val-000.tar")


def _rows(source: ShardSource) -> list[tuple[str, dict[str, str], dict[str, object]]]:
    return [(r.id, r.cells, r.members) for r in source.load().rows]


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The shards that loading scans from now on (the others' rows came from their index)."""
    urls: list[str] = []

    def recording(url: str, small: set[str]) -> Iterator[tuple[ShardSample, dict[str, bytes]]]:
        urls.append(url)
        return scan(url, small)

    monkeypatch.setattr(shards_module, "scan", recording)
    return urls


def _index(*patterns: str) -> int:
    return index_main(["--shards", " ".join(patterns), "--workers", "1"])


def test_an_index_gives_the_rows_of_a_scan(
    img2dataset: Path, capsys: pytest.CaptureFixture[str], scanned: list[str]
) -> None:
    odd = sample("0007", "cat", text="\u00e9t\u00e9", seed=7)  # UTF-8 text, and a name in capitals
    write_shard(img2dataset / "train-001.tar", [sample("0003", "dog", text=None, seed=3), odd])
    with tarfile.open(img2dataset / "train-001.tar", "a") as tar:
        info = tarfile.TarInfo("0008.JPG")
        info.size = len(data := sample("0008", None)["jpg"])
        tar.addfile(info, io.BytesIO(data))
    expected = _rows(_source(img2dataset))
    assert "scanned 2 shard(s) without an index" in capsys.readouterr().err
    assert _index(f"{img2dataset}/train-{{000..001}}.tar", f"{img2dataset}/val-000.tar") == 0
    assert (img2dataset / "train-000.tar.idx").is_file()
    scanned.clear()
    source = _source(img2dataset)
    assert _rows(source) == expected and scanned == []
    assert "index" not in capsys.readouterr().err  # nothing to say
    rows = source.load().rows
    assert rows[-3].members["image"].name == "0008.JPG"
    assert rows[4].cells["text"] == "\u00e9t\u00e9"
    fresh = ShardSource(train=f"{img2dataset}/train-001.tar").load().rows
    assert all(torch.equal(a, b) for a, b in zip(_pixels(rows[3:6]), _pixels(fresh), strict=True))


def test_pack_writes_the_index_and_loading_reads_it(
    small_manifest: Path, tmp_path: Path, scanned: list[str]
) -> None:
    out = tmp_path / "shards"
    pack(ManifestSource(str(small_manifest)), _modalities(), str(out), samples_per_shard=5, workers=0)
    tars = sorted(out.glob("*.tar"))
    assert [p.name for p in sorted(out.glob("*.idx"))] == [f"{p.name}.idx" for p in tars]
    init = yaml.safe_load((out / "source.yaml").read_text())["init_args"]
    expected = _rows(ShardSource(**init))
    assert scanned == []
    (out / "train-000000.tar.idx").unlink()
    assert _rows(ShardSource(**init)) == expected
    assert scanned == [f"{out}/train-000000.tar"]


def _replace(shard: Path, samples: list[dict[str, bytes]]) -> None:
    """Write another shard in the place of ``shard`` (as a copy or a re-pack would), same size."""
    size = shard.stat().st_size
    write_shard(shard, samples)
    assert shard.stat().st_size == size  # tar pads to 10 KiB records: the size alone does not tell


@pytest.mark.parametrize("change", ["first", "middle"])
def test_a_shard_changed_after_indexing_is_scanned_again(
    img2dataset: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    assert _index(f"{img2dataset}/train-{{000..001}}.tar", f"{img2dataset}/val-000.tar") == 0
    shard = img2dataset / "train-000.tar"
    if change == "first":  # another first sample: the first header differs
        new = [sample("0100", "dog", seed=10), sample("0001", "cat", seed=1), sample("0002", "dog", seed=2)]
    else:  # same first sample, the second one's image larger: every later member moves
        new = [sample("0000", "dog", seed=0), sample("0001", "dog", seed=1), sample("0002", "cat", seed=2)]
        new[1]["jpg"] = new[1]["jpg"] + b"\0" * 600
    _replace(shard, new)
    rows = _rows(_source(img2dataset))
    err = capsys.readouterr().err
    assert f"{shard}: stale index" in err and "scanning the shard" in err
    assert rows[:3] == _rows(ShardSource(train=str(shard)))
    assert rows[1][1]["label"] == json.loads(new[1]["json"])["label"]


def test_a_member_read_after_its_shard_changed_raises(img2dataset: Path) -> None:
    rows = _source(img2dataset).load().rows
    before = _pixels(rows[:1])[0]
    # rewritten in place, the second image larger: the third sample's members move
    new = [sample("0000", "dog", seed=0), sample("0001", "cat", seed=1), sample("0002", "dog", seed=2)]
    new[1]["jpg"] += b"\0" * 600
    write_shard(img2dataset / "train-000.tar", new)
    for row in rows[1:3]:
        with pytest.raises(SampleError, match=rf"train-000\.tar:{row.id}\.jpg.*changed since it was indexed"):
            _pixels([row])
    assert torch.equal(_pixels(rows[:1])[0], before)  # where it did not move, the member still reads


def test_remote_shards_read_their_index_not_the_shard(img2dataset: Path, scanned: list[str]) -> None:
    assert _index(f"{img2dataset}/train-{{000..001}}.tar", f"{img2dataset}/val-000.tar") == 0
    expected = _rows(_source(img2dataset))
    with serve(img2dataset) as server:
        source = _source(server.url)
        rows = source.load().rows
        assert [(r.id, r.cells) for r in rows] == [(i, c) for i, c, _ in expected]
        assert server.gets("/train-000.tar.idx") == 1 and scanned == []
        pixels = _pixels(rows)
    local = _source(img2dataset).load().rows
    assert all(torch.equal(a, b) for a, b in zip(pixels, _pixels(local), strict=True))


def test_index_command_indexes_what_it_can_and_names_the_rest(
    img2dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = sample("a", "cat"), sample("b", "dog")
    write_shard(img2dataset / "train-002.tar", [{"__key__": b"a", "jpg": first["jpg"]}, second, first])
    assert _index(f"{img2dataset}/train-{{000..002}}.tar") == 1
    out = capsys.readouterr().out
    assert "not indexed" in out and "train-002.tar" in out and "not adjacent" in out
    assert "2 of 3 shards indexed" in out
    assert not (img2dataset / "train-002.tar.idx").exists()
    assert (img2dataset / "train-001.tar.idx").read_text().count("\n") == 3  # its line and 2 samples


def test_index_command_reads_the_shards_of_a_config(img2dataset: Path, tmp_path: Path) -> None:
    source = {"train": f"{img2dataset}/train-{{000..001}}.tar", "test": f"{img2dataset}/test-000.tar"}
    config = tmp_path / "source.yaml"
    config.write_text(
        yaml.safe_dump({"class_path": "mmfuse.data.ShardSource", "init_args": {**source, "text_members": []}})
    )
    root = Path(__file__).resolve().parents[2]
    args = ["--config", str(root / "configs/quickstart.yaml"), "--data.init_args.source", str(config)]
    assert index_main([*args, "--workers", "1"]) == 0
    indexed = sorted(p.name for p in img2dataset.glob("*.idx"))
    assert indexed == ["test-000.tar.idx", "train-000.tar.idx", "train-001.tar.idx"]
    header = json.loads((img2dataset / "train-000.tar.idx").read_text().splitlines()[0])
    assert header["inline"] == ["json"]  # the source reads no text member: only its JSON fields

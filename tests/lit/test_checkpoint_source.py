"""Checkpoints from any source load with weights_only=True; URLs are cached by the whole URL."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from mmfuse.lit.checkpoint_source import CheckpointError, cache_dir, local_checkpoint
from mmfuse.lit.module import MultimodalModule
from mmfuse.lit.resume import AtomicCheckpointIO
from tests.loopback import serve, write_evil


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFUSE_CACHE", str(tmp_path / "cache"))


def test_the_payload_is_real(tmp_path: Path) -> None:
    # what the tests below guard against: a full unpickling runs it
    marker = tmp_path / "ran"
    torch.load(write_evil(tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.exists()


def test_a_url_checkpoint_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write_evil(tmp_path / "srv" / "evil.ckpt", marker)
    with serve(tmp_path / "srv") as server:
        url = f"{server.url}/evil.ckpt"
        with pytest.raises(CheckpointError, match=r"evil\.ckpt was refused.*weights_only=True"):
            AtomicCheckpointIO().load_checkpoint(url)
        with pytest.raises(CheckpointError, match="refused"):
            MultimodalModule.load_from_checkpoint(url)
        with pytest.raises(CheckpointError, match="weights_only=False is not supported"):
            AtomicCheckpointIO().load_checkpoint(url, weights_only=False)
    assert not marker.exists()
    # and a local path, the same
    with pytest.raises(CheckpointError, match="refused"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "srv" / "evil.ckpt")
    assert not marker.exists()


def test_same_file_name_under_two_urls_loads_each_ones_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for run, value in (("a", 1.0), ("b", 2.0)):
        (tmp_path / "srv" / run).mkdir(parents=True)
        torch.save({"state_dict": {"w": torch.full((3,), value)}}, tmp_path / "srv" / run / "last.ckpt")
    io = AtomicCheckpointIO()
    with serve(tmp_path / "srv") as server:
        a, b = f"{server.url}/a/last.ckpt", f"{server.url}/b/last.ckpt"
        assert io.load_checkpoint(a)["state_dict"]["w"].tolist() == [1.0] * 3
        assert io.load_checkpoint(b)["state_dict"]["w"].tolist() == [2.0] * 3
        out = capsys.readouterr().out
        path_a, path_b = local_checkpoint(a), local_checkpoint(b)
        assert path_a != path_b and path_a.parent.parent == path_b.parent.parent == cache_dir()
        assert path_a.is_relative_to(tmp_path / "cache" / "checkpoints")
        assert f"checkpoint: downloaded {a} -> {path_a}" in out
        assert f"checkpoint: downloaded {b} -> {path_b}" in out
        assert "using cached" in capsys.readouterr().out  # the two local_checkpoint calls above
        assert server.gets("/a/last.ckpt") == 1 and server.gets("/b/last.ckpt") == 1

        # the file at a URL changes (another epoch's last.ckpt): downloaded again, not the stale copy
        torch.save({"state_dict": {"w": torch.full((3,), 3.0)}}, tmp_path / "srv" / "a" / "last.ckpt")
        later = os.stat(tmp_path / "srv" / "a" / "last.ckpt").st_mtime + 5
        os.utime(tmp_path / "srv" / "a" / "last.ckpt", (later, later))
        assert io.load_checkpoint(a)["state_dict"]["w"].tolist() == [3.0] * 3
        assert server.gets("/a/last.ckpt") == 2
        assert io.load_checkpoint(b)["state_dict"]["w"].tolist() == [2.0] * 3


def test_an_unreachable_or_missing_url_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    with serve(tmp_path / "srv") as server:
        url = server.url
        with pytest.raises(CheckpointError, match=r"nope\.ckpt not found"):
            local_checkpoint(f"{url}/nope.ckpt")
    with pytest.raises(CheckpointError, match="cannot be reached"):
        local_checkpoint(f"{url}/gone.ckpt")  # the server is shut down


@pytest.mark.parametrize(
    ("url", "package"), [("s3://bucket/run/last.ckpt", "s3fs"), ("gs://bucket/last.ckpt", "gcsfs")]
)
def test_a_missing_cloud_backend_names_its_package(url: str, package: str) -> None:
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed")
    with pytest.raises(CheckpointError, match=f"pip install {package}"):
        local_checkpoint(url)


def test_a_truncated_checkpoint_names_the_file_and_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, folder / "best-epoch002.ckpt")
    data = (folder / "best-epoch002.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        AtomicCheckpointIO().load_checkpoint(folder / "last.ckpt")
    message = str(info.value)
    assert f"checkpoint {folder / 'last.ckpt'} cannot be read: it is truncated" in message
    assert f"other checkpoints in {folder}: best-epoch002.ckpt" in message

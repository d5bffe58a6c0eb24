"""`pack --audio_features`: log-mel frames computed when packing read back as decoding gives them."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mmfuse.commands.pack import pack
from mmfuse.data import AudioDataModule, ManifestSource, MultimodalDataModule, TextDataModule
from mmfuse.data.manifest.errors import DataError, SampleError
from mmfuse.data.sources.shards import ShardSource
from mmfuse.types import Batch
from tests.conftest import write_wav


def _audio(**settings: float) -> AudioDataModule:
    return AudioDataModule(sample_rate=8000, n_fft=128, hop_length=64, n_mels=8, **settings)  # type: ignore[arg-type]


def _batches(source: ManifestSource, audio: AudioDataModule) -> list[Batch]:
    data = MultimodalDataModule(source, {"audio": audio, "text": TextDataModule(vocab_size=32)}, batch_size=4)
    data.setup("fit")
    data.setup("test")
    return [*data.train_dataloader(), *data.val_dataloader(), *data.test_dataloader()]


def test_packed_frames_equal_the_decoded_ones(small_manifest: Path, tmp_path: Path) -> None:
    with small_manifest.open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # val and test clips longer than max_seconds: read from their start
        if row["split"] != "train":
            write_wav(small_manifest.parent / row["audio"], int(row["id"][1:]), seconds=0.5)
    manifest = ManifestSource(str(small_manifest))
    out = tmp_path / "shards"
    modalities = {"audio": _audio(max_seconds=0.3), "text": TextDataModule(vocab_size=32)}
    pack(manifest, modalities, str(out), workers=0, audio_features=True)
    init = yaml.safe_load((out / "source.yaml").read_text())["init_args"]
    assert init["members"] == {"audio.npy": "audio", "txt": "text"}  # frames, no audio file left
    expected, got = (
        _batches(manifest, _audio(max_seconds=0.3)),
        _batches(ShardSource(**init), _audio(max_seconds=0.3)),
    )
    assert [b.ids for b in got] == [b.ids for b in expected]
    for a, b in zip(expected, got, strict=True):
        assert a.inputs["audio"]["input_features"].shape[1] <= 1 + 2400 // 64  # 0.3 s at most
        assert torch.equal(a.inputs["audio"]["feature_mask"], b.inputs["audio"]["feature_mask"])
        assert torch.allclose(
            a.inputs["audio"]["input_features"], b.inputs["audio"]["input_features"], atol=1e-5
        )

    # read with other settings, the frames are refused rather than taken for what those settings give
    row = ShardSource(**init).load().rows[0]
    with pytest.raises(SampleError, match=r"other settings: hop_length=64 \(now 128\); pack the shards"):
        AudioDataModule(sample_rate=8000, n_fft=128, hop_length=128, n_mels=8, max_seconds=0.3).load_bytes(
            *row.read("audio"),
            train=True,  # type: ignore[attr-defined]
        )


def test_a_train_clip_longer_than_max_seconds_is_refused(small_manifest: Path, tmp_path: Path) -> None:
    manifest = ManifestSource(str(small_manifest))
    with pytest.raises(
        DataError, match=r"column 'audio'.*over max_seconds=0.1: training crops a random window"
    ):
        pack(
            manifest,
            {"audio": _audio(max_seconds=0.1)},
            str(tmp_path / "out"),
            workers=0,
            audio_features=True,
        )
    waveform = AudioDataModule(sample_rate=8000, features="waveform")
    with pytest.raises(ValueError, match="stores log-mel frames"):
        pack(manifest, {"audio": waveform}, str(tmp_path / "out"), workers=0, audio_features=True)


PACK_AFTER_OPENMP = """
import sys
import torch
from mmfuse.commands.pack import pack
from mmfuse.data import AudioDataModule, ManifestSource
torch.set_num_threads(2)
torch.randn(1000, 1000).cos()  # this process's OpenMP threads start, as after a training step
audio = AudioDataModule(sample_rate=8000, n_fft=128, hop_length=64, n_mels=8, max_seconds=0.3)
pack(ManifestSource(sys.argv[1]), {"audio": audio}, sys.argv[2], workers=2, audio_features=True)
print("packed")
"""


def test_pack_workers_compute_frames_after_this_process_used_openmp(
    small_manifest: Path, tmp_path: Path
) -> None:
    # a forked worker that ran an OpenMP region started by its parent waited forever (the benchmark
    # packs after training steps); a subprocess, so that a hang fails here instead of stopping the suite
    out = subprocess.run(
        [sys.executable, "-c", PACK_AFTER_OPENMP, str(small_manifest), str(tmp_path / "shards")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == "packed", out.stderr[-2000:]

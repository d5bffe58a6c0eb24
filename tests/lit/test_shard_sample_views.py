"""W&B sample views of shard rows: the media come from the shard's members, named by shard and member."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf
import wandb
import yaml
from PIL import Image

from mmfuse.commands.pack import pack
from mmfuse.data import AudioDataModule, ImageDataModule, ManifestSource, MultimodalDataModule
from mmfuse.data.sources.shards import ShardSource
from mmfuse.lit.wandb.val_samples import FixedSamples, fixed_val_samples, media_value


def _val_samples(small_manifest: Path, out: Path, decoded: bool) -> FixedSamples:
    modalities = {
        "audio": AudioDataModule(sample_rate=8000, n_fft=128, hop_length=128, n_mels=8),
        "image": ImageDataModule(size=16),
    }
    manifest = ManifestSource(str(small_manifest))
    pack(manifest, modalities, str(out), workers=0, resize_images=decoded, audio_features=decoded)
    init = yaml.safe_load((out / "source.yaml").read_text())["init_args"]
    data = MultimodalDataModule(ShardSource(**init), modalities, batch_size=2)
    data.setup("fit")
    samples = fixed_val_samples(SimpleNamespace(val_dataloaders=data.val_dataloader()), 2)
    assert samples is not None and len(samples.ids) == 2
    return samples


def test_shard_rows_show_their_members(small_manifest: Path, tmp_path: Path) -> None:
    samples = _val_samples(small_manifest, tmp_path / "shards", decoded=False)
    media = small_manifest.parent / "media"
    for b, sample_id in enumerate(samples.ids):
        image, audio = samples.views[b]["image"], samples.views[b]["audio"]
        assert image is not None and audio is not None
        number = sample_id[1:]  # id s3: media/3.png, media/3.wav
        with Image.open(media / f"{number}.png") as img:
            assert image.kind == "image" and np.array_equal(image.value, np.asarray(img.convert("RGB")))
        wave, rate = sf.read(media / f"{number}.wav", dtype="float32")
        assert audio.kind == "audio" and rate == audio.value[1] and np.array_equal(audio.value[0], wave)
        assert isinstance(media_value(image), wandb.Image) and isinstance(media_value(audio), wandb.Audio)


def test_a_member_no_viewer_reads_is_named_by_shard_and_member(small_manifest: Path, tmp_path: Path) -> None:
    samples = _val_samples(small_manifest, tmp_path / "shards", decoded=True)
    for b, sample_id in enumerate(samples.ids):
        audio = samples.views[b]["audio"]
        assert audio is not None and audio.kind == "text"  # log-mel frames: nothing to listen to
        shard, _, member = audio.value.rpartition(":")
        assert shard.startswith(str(tmp_path / "shards" / "val-")) and member == f"{sample_id}.audio.npy"


def test_stored_pixels_show_as_the_image(small_manifest: Path, tmp_path: Path) -> None:
    samples = _val_samples(small_manifest, tmp_path / "shards", decoded=True)
    for b, sample_id in enumerate(samples.ids):
        image = samples.views[b]["image"]
        with Image.open(small_manifest.parent / "media" / f"{sample_id[1:]}.png") as img:
            # 16-px PNGs stored at 16 px: the stored pixels are the file's
            assert image is not None and image.kind == "image"
            assert np.array_equal(image.value, np.asarray(img.convert("RGB")))

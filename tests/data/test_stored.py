"""Arrays stored decoded when packing: they read back as decoding gives them, and only with their settings."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfuse.commands.pack import pack
from mmfuse.data import AudioDataModule, ImageDataModule, ManifestSource
from mmfuse.data.decode import decode_row
from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities import stored
from mmfuse.data.sources.shard_files import Member, _plain_header_matches, header_problem
from mmfuse.data.sources.shards import ShardSource
from tests.conftest import write_png


def test_a_stored_member_is_two_npy_records_that_numpy_reads(tmp_path: Path) -> None:
    image = ImageDataModule(size=8, channels=1, mean=[0.0], std=[1.0])
    path = tmp_path / "0.png"
    write_png(tmp_path / "0.png", seed=0, size=12)
    data = image.precompute(path.read_bytes(), "0.png")
    f = io.BytesIO(data)
    settings, pixels = json.loads(str(np.load(f))), np.load(f)
    assert settings == {"alpha_background": 255, "channels": 1, "size": 8}
    assert pixels.dtype == np.uint8 and pixels.shape == (8, 8, 1)
    decoded = image.load(path.name, tmp_path, train=False)["pixel_values"]  # (1, 8, 8) in [0, 1]
    read = image.load_bytes(data, "shard.tar:0.image.npy", train=False)["pixel_values"]
    assert read.shape == decoded.shape and (read - decoded).abs().max() <= 0.5 / 255  # 8 bits kept


def test_frames_of_every_length_read_back(tmp_path: Path) -> None:
    # headers are cached by their bytes: clips of different lengths must not share a shape
    audio = AudioDataModule(sample_rate=8000, n_fft=128, hop_length=64, n_mels=8)
    for n in (300, 800, 300, 1600):
        wave = 0.1 * torch.randn(n)
        frames = audio.load_bytes(audio.precompute(wave), "a.npy", train=True)["input_features"]
        assert torch.equal(frames, audio.log_mel(wave))
        frames[0, 0] = 1.0  # writable: the bytes it was read from are not


@pytest.mark.parametrize(
    ("reader", "changed"),
    [
        (ImageDataModule(size=8), r"size=12 \(now 8\)"),
        (ImageDataModule(size=12, alpha_background=0), r"alpha_background=255 \(now 0\)"),
        (ImageDataModule(size=12, channels=1, mean=[0.5], std=[0.5]), r"channels=3 \(now 1\)"),
    ],
)
def test_pixels_stored_with_other_settings_are_a_problem_of_the_sample(
    small_manifest: Path, tmp_path: Path, reader: ImageDataModule, changed: str
) -> None:
    manifest = ManifestSource(str(small_manifest))
    pack(manifest, {"image": ImageDataModule(size=12)}, str(tmp_path / "s"), workers=0, resize_images=True)
    shards = ShardSource(train=str(tmp_path / "s" / "train-000000.tar"), members={"image.npy": "image"})
    loaded = shards.load()
    row = loaded.rows[0]
    problems = decode_row(loaded, row, {"image": reader}, train=True, labelled=False).problems
    assert len(problems) == 1
    message = str(problems[0])
    assert f"train-000000.tar:{row.id}.image.npy" in message and f"id '{row.id}'" in message
    assert (
        "column 'image'" in message
        and f"stored with other settings: {changed.replace(chr(92), '')}" in message
    )
    with pytest.raises(SampleError, match=changed + "; pack the shards again"):
        reader.load_bytes(*row.read("image"), train=True)  # type: ignore[attr-defined]


def test_what_is_not_a_stored_array_is_refused_by_name() -> None:
    image = ImageDataModule(size=4)
    plain = io.BytesIO()
    np.save(plain, np.zeros((4, 4, 3), dtype=np.uint8))  # a .npy of pixels, without settings
    whole = stored.dump(image.stored_settings(), np.zeros((4, 4, 3), dtype=np.uint8))
    wrong = stored.dump(image.stored_settings(), np.zeros((4, 4, 3), dtype=np.float32))
    cases = [
        (plain.getvalue(), r"its first record is a uint8 array of shape \(4, 4, 3\), not the settings"),
        (b"GIF89a...", "no .npy record at byte 0"),
        (whole[:-5], r"stored array truncated: 43 bytes for \(4, 4, 3\) uint8"),
        (wrong, r"stored pixels are float32 \(4, 4, 3\), not uint8 \(4, 4, 3\)"),
    ]
    for data, reason in cases:
        with pytest.raises(SampleError, match=reason) as raised:
            image.load_bytes(data, "s.tar:7.image.npy", train=False)
        assert raised.value.file == "s.tar:7.image.npy"


def _members(names: list[str]) -> tuple[bytes, list[Member]]:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    data = out.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return data, [Member(i.name, i.offset_data, i.size) for i in tar]


def test_the_quick_header_check_agrees_with_tarfile() -> None:
    names = ["000001.png", "a/b/000002.image.npy", "x" * 120 + ".png", "ünï.png"]
    data, members = _members(names)
    for member in members:
        header = data[member.offset - 512 : member.offset]
        quick = len(member.name.encode()) < 100 and member.name.isascii()
        assert _plain_header_matches(header, member) is quick  # else parsed by tarfile
        assert header_problem(header, member) == ""
        assert "holds" in header_problem(header, Member(member.name, member.offset, 4))  # another size
        if len(member.name) < 100:  # a long name's header holds only its start (its pax header, all)
            assert "holds" in header_problem(header, Member(member.name + "x", member.offset, 3))
    member = members[0]
    header = bytearray(data[member.offset - 512 : member.offset])
    header[200] ^= 1  # a byte the name and size do not cover: the checksum no longer holds
    assert not _plain_header_matches(bytes(header), member)
    assert "bad checksum" in header_problem(bytes(header), member)

"""A small real dataset on disk with every kind of problem planted, and what a checker must find.

Used by the check-data and the bad-sample tests: the same planted problems must be reported by
``mmfuse check-data`` and skipped (or raised) by training.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mmfuse.data import AudioDataModule, ImageDataModule, ManifestSource, TextDataModule
from mmfuse.data.manifest.tasks import TaskSpec
from mmfuse.data.modalities.base import ModalityDataModule
from mmfuse.lit.module import MultimodalModule
from mmfuse.models.encoders import AudioCNN, ImageCNN, TextRNN
from mmfuse.models.fusion import ConcatFusion, CrossModalAttentionFusion, Fuser, LateFusion
from tests.conftest import write_png, write_wav

HEADER = ["id", "split", "image", "text", "audio", "label"]
CLASSES = ["cat", "dog"]


@dataclass
class Messy:
    """Attributes:
    manifest: the CSV manifest.
    planted: (row, column, reason fragment) of every planted problem; column None = the whole row.
    bad_ids: split -> ids of the rows that must be skipped (a duplicate's id is its first row's id).
    rows: split -> rows in the manifest (``unknown``: the malformed line).
    good_ids: split -> ids of the usable rows.
    """

    manifest: Path
    planted: set[tuple[int, str | None, str]] = field(default_factory=set)
    bad_ids: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    good_ids: dict[str, set[str]] = field(default_factory=dict)


MAX_PIXELS = 1024  # the good images have 64 pixels, the planted big one 1600


def modalities() -> dict[str, ModalityDataModule]:
    """Tiny decoders for the messy data: text is required, audio is not resampled."""
    return {
        "audio": AudioDataModule(sample_rate=8000, n_fft=128, hop_length=128, n_mels=8),
        "image": ImageDataModule(size=8, max_pixels=MAX_PIXELS),
        "text": TextDataModule(max_length=8, vocab_size=64, required=True),
    }


def source(messy: Messy) -> ManifestSource:
    return ManifestSource(str(messy.manifest), classes=CLASSES)


def build_messy(root: Path) -> Messy:
    """16 good rows (two of them partial, one with a 200,000-character text) and 19 bad ones, one
    problem each."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    lines: list[list[str] | str] = []  # a str is written as a raw (malformed) line

    def good(i: int, split: str, image: bool = True, audio: bool = True) -> list[str]:
        return [
            f"g{i}",
            split,
            "media/" + write_png(media / f"g{i}.png", i, size=8) if image else "",
            f"sample {i} says {'meow' if i % 2 else 'woof'}",
            "media/" + write_wav(media / f"g{i}.wav", i, seconds=0.1) if audio else "",
            CLASSES[i % 2],
        ]

    splits = ["train"] * 8 + ["val"] * 3 + ["test"] * 3
    for i, split in enumerate(splits):
        lines.append(good(i, split, image=i != 9, audio=i != 2))  # g2 has no audio, g9 no image

    png = (media / "g0.png").read_bytes()
    (media / "cut.png").write_bytes(png[: len(png) // 2])
    sf.write(media / "empty.wav", np.zeros(0, np.float32), 8000)
    (media / "zero_bytes.wav").write_bytes(b"")
    nan = np.full(800, np.nan, np.float32)
    sf.write(media / "nan.wav", nan, 8000, subtype="FLOAT")
    sf.write(media / "silent.wav", np.zeros(800, np.float32), 8000)
    write_wav(media / "fast.wav", 99, sample_rate=16000, seconds=0.1)
    write_png(media / "big.png", 98, size=40)  # 1600 pixels > MAX_PIXELS
    outside = root.parent / "outside"  # real files, readable, but not under the manifest's folder
    write_png(outside / "secret.png", 97, size=8)
    write_wav(outside / "secret.wav", 96, seconds=0.1)

    planted: list[tuple[str, str, dict[str, str], str | None, str]] = [
        ("train", "b_missing", {"image": "media/gone.png"}, "image", "file not found"),
        ("train", "b_cut", {"image": "media/cut.png"}, "image", "cannot decode image"),
        ("train", "b_empty_wav", {"audio": "media/empty.wav"}, "audio", "empty audio"),
        ("train", "b_zero_bytes", {"audio": "media/zero_bytes.wav"}, "audio", "cannot decode audio"),
        ("val", "b_nan", {"audio": "media/nan.wav"}, "audio", "non-finite"),
        ("train", "b_silent", {"audio": "media/silent.wav"}, "audio", "silent"),
        ("test", "b_rate", {"audio": "media/fast.wav"}, "audio", "sample rate is 16000 Hz"),
        ("train", "b_blank", {"text": "   "}, "text", "modality 'text' is required"),
        ("val", "b_label", {"label": "bird"}, "label", "target 'bird' is not one of the classes"),
        ("train", "b_nolabel", {"label": ""}, "label", "target is empty"),
        ("train", "g1", {}, "id", "duplicate id (first seen in row 2)"),
        ("test", "g3", {}, "id", "the same id is in two splits: 'train' (row 4) and 'test'"),
        ("training", "b_split", {}, "split", "split 'training' is not one of"),
        ("train", "", {}, "id", "empty id"),
        ("test", "b_big", {"image": "media/big.png"}, "image", f"more than max_pixels={MAX_PIXELS:,}"),
        ("test", "b_dotdot", {"image": "../outside/secret.png"}, "image", "a path outside the manifest"),
        ("test", "b_abs", {"audio": str(outside / "secret.wav")}, "audio", "an absolute path outside"),
    ]
    messy = Messy(manifest=root / "manifest.csv")
    entries: list[tuple[list[str] | str, str | None, str, str]] = []  # (line, column, reason, split)
    for n, (split, sample_id, change, column, reason) in enumerate(planted):
        cells = dict(zip(HEADER, good(100 + n, split), strict=True))
        cells.update(id=sample_id, **change)
        known = split if split in ("train", "val", "test") else "unknown"
        entries.append(([cells[h] for h in HEADER], column, reason, known))
    # a line with too many fields, and an unterminated quote that must cost its own row only
    entries.insert(
        3, ("x1,train,media/g0.png,too,many,fields,here", None, "7 fields where the header", "unknown")
    )
    entries.append(
        ('b_quote,test,media/g0.png,"never closed,media/g0.wav,cat', None, "4 fields where", "unknown")
    )
    lines += [line for line, *_ in entries]
    lines.append(good(200, "test"))  # read as usual after the unterminated quote
    long_text = good(201, "test")
    long_text[3] = "purr " * 40_000  # 200,000 characters: more than csv's default field limit
    lines.append(long_text)

    start = len(splits)  # data rows before the planted ones
    for k, (line, column, reason, split) in enumerate(entries):
        row = start + k + 1
        if column is None:
            reason = f"line {row + 1}: {reason}"  # the header is line 1
        messy.planted.add((row, column, reason))
        messy.bad_ids.setdefault(split, []).append(line[0] if isinstance(line, list) else "")
    with messy.manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for line in lines:
            if isinstance(line, str):
                f.write(line + "\r\n")
            else:
                writer.writerow(line)
    for split in ("train", "val", "test"):
        listed = [line for line in lines if isinstance(line, list) and line[1] == split]
        messy.rows[split] = len(listed)
        messy.good_ids[split] = {line[0] for line in listed if line[0].startswith("g")}
    messy.good_ids["test"].discard("g3")  # the copy of a train row
    messy.good_ids["train"] = {f"g{i}" for i in range(8)}  # g1's duplicate is skipped, g1 kept
    messy.rows["unknown"] = len(messy.bad_ids["unknown"])
    return messy


def tiny_module(fusion: str = "concat", classes: list[str] = CLASSES, **kwargs: Any) -> MultimodalModule:
    """A model for :func:`modalities`' data, as small as it gets."""
    names = ["audio", "image", "text"]
    fusers: dict[str, Fuser] = {
        "concat": ConcatFusion(names, d_model=8, hidden=8),
        "late": LateFusion(names, d_model=8),
        "cross": CrossModalAttentionFusion(names, d_model=8, num_heads=2),
    }
    encoders = {
        "audio": AudioCNN(n_mels=8, d_model=8, channels=[8]),
        "image": ImageCNN(d_model=8, channels=[8]),
        "text": TextRNN(vocab_size=64, d_model=8, embed_dim=8, hidden_size=8),
    }
    tasks = [TaskSpec(name="label", kind="multiclass", names=list(classes))]
    return MultimodalModule(encoders, fusers[fusion], tasks=tasks, **kwargs)  # type: ignore[arg-type]

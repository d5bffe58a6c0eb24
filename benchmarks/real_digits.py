"""Build a small real paired dataset: noisy handwritten digits (images) + noisy spoken digits (audio).

    /tmp/skvenv/bin/python benchmarks/real_digits.py --out data/real_digits   # ~3,000 rows, ~1 minute

It writes ``<out>/manifest.csv`` (``id,split,image,audio,label``), ``images/*.png`` and ``audio/*.wav``,
the layout that ``configs/manifest_example.yaml`` reads (its measured table: docs/results-real-data.md).

What the data is, exactly:

- **Images** are scikit-learn's bundled handwritten digits (1,797 scans, 8 x 8 pixels, 16 grey levels,
  43 writers; UCI "Optical Recognition of Handwritten Digits"). Each row draws one scan with replacement,
  upsamples it to 20 px, rotates it by up to 15 degrees, places it at a random shift in a 28 x 28
  frame, adds Gaussian pixel noise (sigma 0.45) and, in half of the rows, an occluding block of random
  grey (6-14 px). Saved as 8-bit grey PNG.
- **Audio** is the digit's English word ("zero" ... "nine") spoken by the espeak-ng speech synthesiser
  (Debian package ``espeak-ng``; it installs offline, unlike recordings of people): 60 synthetic
  "speakers", each a voice variant with its own pitch and speaking rate. Each row takes
  its speaker's word, stretches it by 0.85-1.15 (voice length and rate together), pads it with 0-0.3 s
  of silence at each end, adds white + low-passed noise at an SNR drawn from -10..0 dB, and saves it at
  8 kHz (70% of rows) or 16 kHz (30%). 5% of rows have no audio (an empty cell).
- **Splits** are by source, so no test row shares its scan or its speaker with a training row: the
  scans are split 70/15/15 and the speakers 42/9/9 before any row is drawn; 2,100/450/450 rows.

No spoken-digit recordings (e.g. the Free Spoken Digit Dataset) install from PyPI, so the audio is
synthetic speech: real words with a real synthesiser's voices, not recordings of people. The noise
levels were fixed once, before any config was tuned, so that a linear model on either modality alone
reaches roughly 0.5-0.7 test accuracy.

Needs scikit-learn, scipy, numpy, Pillow and soundfile (not project dependencies: run it from a
scratch venv) and the ``espeak-ng`` program (``apt-get install espeak-ng``).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
VARIANTS = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "croak", "klatt",
    "klatt2", "klatt3", "Andy", "Annie", "Alex", "Denis", "ed", "Gene", "Jacky", "Lee", "linda",
    "Mario", "Michael", "Mike", "paul", "rob", "steph", "Storm", "zac", "david", "grandpa", "steph2",
    "adam", "john", "max", "quincy", "robert", "travis", "victor", "shelby", "grandma", "aunty", "iven",
]  # fmt: skip
SPLITS = {"train": 0.70, "val": 0.15, "test": 0.15}
ROWS = 3000
SPEAKERS = {"train": 42, "val": 9, "test": 9}
IMAGE_NOISE = 0.45  # sigma of the Gaussian pixel noise, pixels in [0, 1]
SNR_DB = (-10.0, 0.0)  # speech-to-noise ratio range of the audio
MISSING_AUDIO = 0.05
SYNTH_RATE = 22050  # espeak-ng's output rate


def _speak(word: str, variant: str, pitch: int, speed: int, path: Path) -> Any:
    import soundfile as sf

    voice = f"en+{variant}"
    cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed)]
    subprocess.run([*cmd, "-w", str(path), word], check=True, capture_output=True)
    wave, rate = sf.read(str(path), dtype="float32")
    assert rate == SYNTH_RATE, f"espeak-ng wrote {rate} Hz"
    return wave


def _speakers(rng: Any, work: Path) -> dict[str, list[list[Any]]]:
    """Per split, a list of speakers, each the 10 words as 22.05 kHz waves."""
    out: dict[str, list[list[Any]]] = {}
    variants = list(rng.permutation(VARIANTS))
    for split, count in SPEAKERS.items():
        voices = []
        for _ in range(count):
            variant = variants.pop() if variants else str(rng.choice(VARIANTS))
            pitch = int(rng.integers(15, 90))
            speed = int(rng.integers(120, 230))
            voices.append([_speak(w, variant, pitch, speed, work / "w.wav") for w in WORDS])
        out[split] = voices
    return out


def _image(scan: Any, rng: Any) -> Any:
    import numpy as np
    from PIL import Image

    digit = Image.fromarray((scan / 16.0).astype(np.float32)).resize((20, 20), Image.Resampling.BICUBIC)
    digit = digit.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR)
    frame = np.zeros((28, 28), dtype=np.float32)
    top, left = (int(v) for v in rng.integers(1, 8, size=2))
    frame[top : top + 20, left : left + 20] = np.clip(np.asarray(digit), 0, 1)
    frame += rng.normal(0.0, IMAGE_NOISE, size=frame.shape).astype(np.float32)
    if rng.random() < 0.5:  # an occluding block: a smudge, a finger, a sticker
        h, w = (int(v) for v in rng.integers(6, 15, size=2))
        y, x = (int(v) for v in rng.integers(0, 28 - 6, size=2))
        frame[y : y + h, x : x + w] = rng.uniform(0, 1)
    return Image.fromarray((np.clip(frame, 0, 1) * 255).round().astype(np.uint8), mode="L")


def _audio(word: Any, rng: Any) -> tuple[Any, int]:
    import numpy as np
    from scipy.signal import lfilter, resample_poly

    stretch = rng.uniform(0.85, 1.15)
    rate = 8000 if rng.random() < 0.7 else 16000
    # resampling to rate * stretch and reading it at rate makes the word longer/lower or shorter/higher
    wave = resample_poly(word, round(rate * stretch), SYNTH_RATE).astype(np.float32)
    before, after = (int(v) for v in rng.integers(0, int(0.3 * rate), size=2))
    wave = np.concatenate([np.zeros(before, np.float32), wave, np.zeros(after, np.float32)])
    speech_power = float(np.mean(word**2))
    white = rng.normal(size=len(wave))
    rumble = lfilter([1.0], [1.0, -0.97], rng.normal(size=len(wave)))  # low-passed: hum and room noise
    noise = white / white.std() + rumble / rumble.std()
    snr = 10 ** (rng.uniform(*SNR_DB) / 10)
    noise *= np.sqrt(speech_power / snr / np.mean(noise**2))
    mixed = wave + noise.astype(np.float32)
    mixed *= rng.uniform(0.2, 0.9) / np.abs(mixed).max()  # recording levels differ
    return mixed, rate


def build(out: Path, rows: int = ROWS, seed: int = 0) -> Path:
    """Write the dataset under ``out``; returns the manifest's path."""
    import numpy as np
    import soundfile as sf
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    order = rng.permutation(len(digits.target))
    cuts = np.cumsum([round(f * len(order)) for f in SPLITS.values()])[:-1]
    scans = dict(zip(SPLITS, np.split(order, cuts), strict=True))
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "audio").mkdir()
    with tempfile.TemporaryDirectory() as work:
        speakers = _speakers(rng, Path(work))
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "split", "image", "audio", "label"])
        counts = {s: round(f * rows) for s, f in SPLITS.items()}
        counts["train"] = rows - counts["val"] - counts["test"]
        index = 0
        for split, count in counts.items():
            for _ in range(count):
                scan = int(rng.choice(scans[split]))
                label = int(digits.target[scan])
                sample_id = f"d{index:05d}"
                image = f"images/{sample_id}.png"
                _image(digits.images[scan], rng).save(out / image)
                speaker = speakers[split][int(rng.integers(len(speakers[split])))]
                audio = ""
                if rng.random() >= MISSING_AUDIO:
                    wave, rate = _audio(speaker[label], rng)
                    audio = f"audio/{sample_id}.wav"
                    sf.write(str(out / audio), wave, rate, subtype="PCM_16")
                writer.writerow([sample_id, split, image, audio, label])
                index += 1
    return manifest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("data/real_digits"), help="folder to write")
    parser.add_argument("--rows", type=int, default=ROWS, help=f"rows to draw (default {ROWS})")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    args = parser.parse_args()
    print(build(args.out, args.rows, args.seed))

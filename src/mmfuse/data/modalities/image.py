"""Images: decode with Pillow, resize to a square, normalise, and (train only) the augmentations asked for."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from mmfuse.data.manifest.errors import SampleError
from mmfuse.data.modalities import stored
from mmfuse.data.modalities.base import ModalityDataModule, Sample, SampleView
from mmfuse.data.modalities.image_modes import image_to_array

if TYPE_CHECKING:
    from mmfuse.data.manifest.source import ManifestSource

_LEGACY_CROP_PAD = 4  # what the deprecated `augment: true` cropped within
# 50 megapixels: every camera and phone photo (48 MP sensors: 8000 x 6000) fits; one decode then
# costs at most ~200 MB (RGBA), and Pillow's own decompression-bomb warning (89 MP) never fires first
MAX_PIXELS = 50_000_000


class ImageDataModule(ModalityDataModule):
    """Decodes image files (PNG, JPEG, anything Pillow reads) into ``(C, H, W)`` float tensors.

    Each image is turned upright (EXIF orientation), converted to grey (``channels=1``) or RGB
    (``channels=3``) whatever its mode (16-bit scaled from its full range, transparency composited
    over ``alpha_background``, palette and CMYK converted: see
    :mod:`mmfuse.data.modalities.image_modes`), resized to ``size x size`` with bilinear filtering,
    scaled to ``[0, 1]`` and normalised with ``(x - mean) / std`` per channel.
    The encoder receives ``pixel_values`` of shape ``(B, C, H, W)``.

    Args:
        column: manifest column holding the image path, relative to the manifest's folder.
        size: side of the square every image is resized to, in pixels.
        channels: 1 for greyscale, 3 for RGB; images are converted to this whatever their mode.
        mean: per-channel mean subtracted after scaling to [0, 1]; one value per channel.
            Default 0.5 for every channel; under the ``mmfuse`` command, with an ``HFImageEncoder``
            for this modality, the backbone's own ``image_mean`` (its image processor config).
        std: per-channel standard deviation divided by after subtracting ``mean``; one value
            per channel. Default 0.5 for every channel (so [0, 1] maps to [-1, 1]); with an
            ``HFImageEncoder``, its ``image_std``.
        hflip: train-time augmentation: flip horizontally with probability 0.5. Off by default: a
            mirrored digit or text is no longer the same class; turn it on for photos of objects.
        crop_padding: train-time augmentation: reflect-pad the image by this many pixels on each
            side and take a random ``size x size`` crop (a shift of up to that many pixels); 0: off.
        brightness: train-time augmentation: multiply the pixels (in ``[0, 1]``) by a factor drawn
            uniformly from ``[1 - brightness, 1 + brightness]``; 0: off.
        contrast: train-time augmentation: scale each image's deviation from its mean grey by a
            factor drawn uniformly from ``[1 - contrast, 1 + contrast]``; 0: off.
        erase: train-time augmentation (random erasing, Zhong et al. 2020): with this probability,
            hide one random rectangle (2-33% of the image, aspect 0.3-3.3) behind a random grey;
            0: off. The model then also learns from partly hidden images (occluded scans, stickers).
        augment: deprecated; ``true`` meant ``hflip: true, crop_padding: 4``, and is read as that
            (with a warning). Set the options above instead.
        required: an empty cell is a problem (check-data reports it; training raises or skips the
            row, see ``on_bad_sample``) instead of marking this modality missing for the sample.
        max_pixels: an image with more pixels (width x height, read from the file's header before
            decoding) is a problem of its row. None: no limit of mmfuse's (Pillow's own still refuses
            images over ~179 million pixels).
        alpha_background: grey level (0..255) that transparent pixels are composited over before
            the alpha channel is dropped; 255 = white.
        source: the manifest, only needed when this module is used alone.
        batch_size: samples per batch, only used when alone.
        num_workers: DataLoader worker processes, only used when alone.
    """

    name = "image"
    cell_is_path = True

    def __init__(
        self,
        column: str = "image",
        size: int = 32,
        channels: Literal[1, 3] = 3,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        hflip: bool = False,
        crop_padding: int = 0,
        brightness: float = 0.0,
        contrast: float = 0.0,
        erase: float = 0.0,
        augment: bool | None = None,
        required: bool = False,
        max_pixels: int | None = MAX_PIXELS,
        alpha_background: int = 255,
        source: ManifestSource | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            column=column, required=required, source=source, batch_size=batch_size, num_workers=num_workers
        )
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        mean = [0.5] * channels if mean is None else list(mean)
        std = [0.5] * channels if std is None else list(std)
        for label, values in (("mean", mean), ("std", std)):
            if len(values) != channels:
                raise ValueError(f"{label} has {len(values)} values but channels={channels}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {std}")
        if augment is not None:
            warnings.warn(
                f"ImageDataModule(augment={augment}) is deprecated: set the augmentations one by one "
                f"(hflip, crop_padding, brightness, contrast); augment: true is read as hflip: true, "
                f"crop_padding: {_LEGACY_CROP_PAD}",
                FutureWarning,
                stacklevel=2,
            )
            if augment:
                hflip, crop_padding = True, crop_padding or _LEGACY_CROP_PAD
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        for label, amount in (("brightness", brightness), ("contrast", contrast), ("erase", erase)):
            if not 0 <= amount <= 1:
                raise ValueError(f"{label} must be in [0, 1], got {amount}")
        if max_pixels is not None and max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1 (or null for no limit), got {max_pixels}")
        if not 0 <= alpha_background <= 255:
            raise ValueError(f"alpha_background must be a grey level 0..255, got {alpha_background}")
        self.max_pixels = max_pixels
        self.alpha_background = alpha_background
        self.size = size
        self.channels = channels
        self.mean = mean
        self.std = std
        self.hflip = hflip
        self.crop_padding = crop_padding
        self.brightness = brightness
        self.contrast = contrast
        self.erase = erase
        self._mean = torch.tensor(mean, dtype=torch.float32).view(channels, 1, 1)  # (C, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(channels, 1, 1)  # (C, 1, 1)

    def load(self, cell: str, root: Path, train: bool) -> Sample:
        """Decode one image file into ``{"pixel_values": (C, size, size) float32}``.

        Raises:
            SampleError: the file is missing, has more than ``max_pixels`` pixels, or Pillow cannot
                decode it (corrupt, truncated, not an image).
        """
        path = root / cell
        if not path.is_file():
            raise SampleError("file not found", file=str(path))
        return self._decode(path, str(path), train)

    def load_bytes(self, data: bytes, name: str, train: bool) -> Sample:
        """Decode one image read from elsewhere (a shard member), as :meth:`load` decodes a file; a
        ``.npy`` member holds pixels decoded when packing (``mmfuse pack --resize_images``)."""
        if name.endswith(".npy"):
            pixels = stored.load(data, self.stored_settings(), name)
            if pixels.dtype != np.uint8 or pixels.shape != (self.size, self.size, self.channels):
                raise SampleError(
                    f"stored pixels are {pixels.dtype} {pixels.shape}, not uint8 "
                    f"{(self.size, self.size, self.channels)}; pack the shards again",
                    file=name,
                )
            x = np.empty((self.channels, self.size, self.size), dtype=np.float32)  # (C, H, W)
            np.divide(pixels.transpose(2, 0, 1), np.float32(255.0), out=x)  # as decoding divides
            return self._finish(torch.from_numpy(x), train)
        return self._decode(io.BytesIO(data), name, train)

    def stored_settings(self) -> dict[str, int]:
        """What stored pixels depend on: written with them when packing, and checked when read."""
        return {"channels": self.channels, "size": self.size, "alpha_background": self.alpha_background}

    def precompute(self, data: bytes, name: str) -> bytes:
        """An image file decoded as :meth:`load` decodes it (orientation, mode, size), before any
        augmentation, stored as 8-bit pixels ``(size, size, channels)`` with :meth:`stored_settings`
        (see :mod:`mmfuse.data.modalities.stored`); :meth:`load_bytes` reads it back.

        Raises:
            SampleError: the file does not decode.
        """
        array = self._pixels(io.BytesIO(data), name)  # (H, W, C) in [0, 1]
        pixels = (array * 255.0).round().clip(0, 255).astype(np.uint8)
        return stored.dump(self.stored_settings(), pixels)

    def _decode(self, source: Path | BinaryIO, name: str, train: bool) -> Sample:
        array = self._pixels(source, name)
        return self._finish(torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))), train)

    def _pixels(self, source: Path | BinaryIO, name: str) -> np.ndarray:
        """The decoded image, ``(size, size, channels)`` float32 in ``[0, 1]``."""
        try:
            with warnings.catch_warnings():
                if self.max_pixels is not None:
                    # Pillow warns about huge images in Image.open, naming no file; max_pixels
                    # reports them by row instead (without a limit, Pillow's warning is all there is)
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(source) as img:  # lazy: the header is read, nothing decoded yet
                    self._check_pixels(img.size, name)
                    img.load()  # decode now, so that a truncated file fails here and not later
                    array = image_to_array(img, self.channels, self.size, self.alpha_background)
        except Image.DecompressionBombError as e:
            raise SampleError(f"image too large for Pillow: {e}", file=name) from None
        except (OSError, SyntaxError, ValueError) as e:
            # UnidentifiedImageError is an OSError; some corrupt PNGs raise SyntaxError
            raise SampleError(f"cannot decode image: {e}", file=name) from None
        return array

    def _finish(self, x: Tensor, train: bool) -> Sample:
        """``x``: ``(C, H, W)`` in ``[0, 1]`` -> augmented (train) and normalised ``pixel_values``."""
        if train and self.augments:
            x = self._augment(x)
        x = (x - self._mean) / self._std
        return {"pixel_values": x}

    @property
    def augments(self) -> bool:
        """True when any train-time augmentation is on."""
        return self.hflip or self.crop_padding > 0 or max(self.brightness, self.contrast, self.erase) > 0

    def _check_pixels(self, size: tuple[int, int], name: str) -> None:
        width, height = size
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise SampleError(
                f"image is {width} x {height} = {width * height:,} pixels, more than "
                f"max_pixels={self.max_pixels:,} (raise max_pixels to accept it)",
                file=name,
            )

    def _augment(self, x: Tensor) -> Tensor:
        """The augmentations that are on, in a fixed order: flip, crop, brightness, contrast, erase.

        ``x``: ``(C, H, W)`` in ``[0, 1]``. Every draw comes from torch's default generator, which the
        dataset seeds per sample (:func:`mmfuse.data.sampling.sample_seed`): the same sample in the
        same epoch gets the same augmentation in any worker, and a resumed run replays it.
        """
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        pad = min(self.crop_padding, self.size - 1)  # reflect padding must be smaller than the image
        if pad > 0:
            padded = F.pad(x[None], (pad, pad, pad, pad), mode="reflect")[0]  # (C, H + 2p, W + 2p)
            top, left = torch.randint(0, 2 * pad + 1, (2,)).tolist()
            x = padded[:, top : top + self.size, left : left + self.size]
        if self.brightness > 0:
            x = x * _uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast > 0:
            grey = x.mean()  # over channels and pixels: the image's mean grey
            x = (x - grey) * _uniform(1 - self.contrast, 1 + self.contrast) + grey
        if self.brightness > 0 or self.contrast > 0:
            x = x.clamp(0.0, 1.0)  # a real image stays in range: normalisation assumes [0, 1]
        if self.erase > 0 and torch.rand(()) < self.erase:
            x = _erase(x)
        return x.contiguous()

    def collate(self, samples: Sequence[Sample | None]) -> dict[str, Tensor]:
        """Stack into ``{"pixel_values": (B, C, H, W)}``; a missing image (``None``) becomes zeros."""
        blank = torch.zeros(self.channels, self.size, self.size)
        return {"pixel_values": torch.stack([blank if s is None else s["pixel_values"] for s in samples])}

    def sample_view(self, cell: str, root: Path, inputs: Mapping[str, Tensor], b: int) -> SampleView:
        """The image file, as it is on disk (before resizing and normalisation)."""
        return SampleView("image", str(root / cell))

    def encoder_requirements(self) -> dict[str, Any]:
        """Channels for every image encoder; for a pretrained one (``HFImageEncoder``) also the size
        its position embeddings take (``image_size``, None for CNNs: not checked) and the
        normalisation it was pretrained with (``image_mean``, ``image_std``, compared exactly)."""
        return {
            "in_channels": self.channels,
            "image_size": self.size,
            "image_mean": self.mean,
            "image_std": self.std,
        }


def _erase(x: Tensor) -> Tensor:
    """``x`` ``(C, H, W)`` with one random rectangle (area 2-33%, aspect 0.3-3.3) set to a random grey."""
    _, height, width = x.shape
    area = _uniform(0.02, 0.33) * height * width
    aspect = math.exp(_uniform(math.log(0.3), math.log(3.3)))
    h = max(1, min(height, round(math.sqrt(area * aspect))))
    w = max(1, min(width, round(math.sqrt(area / aspect))))
    top = int(torch.randint(0, height - h + 1, ()))
    left = int(torch.randint(0, width - w + 1, ()))
    x = x.clone()
    x[:, top : top + h, left : left + w] = _uniform(0.0, 1.0)
    return x


def _uniform(low: float, high: float) -> float:
    """One draw from ``U(low, high)`` off torch's default generator (seeded per sample)."""
    return low + (high - low) * float(torch.rand(()))

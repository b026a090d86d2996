"""The pool of images fed to the model: read from a folder, made up from a seed, or the extreme batch-mates of fuzzing.

Every pool is built as 0..255 pixels first and then preprocessed the same way, so a file, a synthetic image and a
special one reach the model on the same scale.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from batchcheck.errors import BatchcheckBug, UsageError, check_argument
from batchcheck.options import PREPROCESSING

CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68])
IMAGE_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
DOC_FILE_STEMS = frozenset({"README", "LICENSE", "LICENCE"})
NON_IMAGE_SCALE = 100.0  # every fourth synthetic non-image tensor is this many times larger
SMALL_INT_TOP = 9  # integer non-image tensors stay in 0..9, safe as indices into any embedding
LARGE = 1e3


@dataclass(frozen=True, eq=False)
class ImagePool:
    """Named images ready for the model: `array[i]` is the image called `names[i]`."""

    names: tuple[str, ...]
    array: np.ndarray

    def __post_init__(self) -> None:
        if len(self.names) != len(self.array):
            raise BatchcheckBug(f"ImagePool has {len(self.names)} names for {len(self.array)} images")

    def __len__(self) -> int:
        return len(self.names)

    def __add__(self, other: ImagePool) -> ImagePool:
        if self.array.shape[1:] != other.array.shape[1:] or self.array.dtype != other.array.dtype:
            mine, theirs = (f"{p.array.dtype}{p.array.shape[1:]}" for p in (self, other))
            raise BatchcheckBug(f"cannot join pools of {mine} and {theirs}")
        return ImagePool(self.names + other.names, np.concatenate([self.array, other.array]))


def pool_from_dir(directory: Path, per_image_shape: tuple[int, ...], dtype: np.dtype, preprocess: str) -> ImagePool:
    """Every image file in `directory` (sorted, not recursive), upright per EXIF, resized and preprocessed.

    Hidden files and README/LICENSE files are skipped; any other file that Pillow cannot read is an error.
    """
    shape, dtype = _checked(per_image_shape, dtype, preprocess)
    check_argument(
        _is_image(shape),
        "--images needs an image input (H, W, C with C = 1 or 3, or 4 for RGBA); "
        "the model input has per-image shape {}",
        shape,
    )
    directory = Path(directory)
    where = f"image folder `{directory}`"
    check_argument(directory.exists(), "{}: does not exist; point --images at a folder of images", where)
    check_argument(directory.is_dir(), "{}: is a file, not a folder; point --images at a folder of images", where)
    files = sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.stem.upper() not in DOC_FILE_STEMS
    )
    check_argument(files, "{}: has no image files; put images in it or point --images at another folder", where)
    pixels = np.stack([_read_pixels(p, shape) for p in files])
    return ImagePool(tuple(p.name for p in files), _preprocessed(pixels, dtype, preprocess))


def synthetic_pool(
    per_image_shape: tuple[int, ...], dtype: np.dtype, preprocess: str, seed: int, count: int = 12
) -> ImagePool:
    """`count` made-up inputs, the same for the same seed.

    Image inputs get noise, gradients, flat colours and extremes, in that order and then more noise; other inputs get
    standard-normal tensors, every fourth scaled by 100 (integers: 0..9, booleans: coin flips).
    """
    shape, dtype = _checked(per_image_shape, dtype, preprocess)
    rng = np.random.default_rng(seed)
    if not _is_image(shape):
        return _synthetic_tensors(shape, dtype, rng, count)
    fixed = _fixed_images(shape)
    names: list[str] = []
    pixels: list[np.ndarray] = []
    for i in range(count):
        if 2 <= i < 2 + len(fixed):
            name, image = fixed[i - 2]
        elif i % 2 == 0:
            name, image = f"noise-{i}", rng.uniform(0, 255, shape)
        else:
            name, image = f"gaussian-{i}", np.clip(rng.normal(127.5, 50, shape), 0, 255)
        names.append(name)
        pixels.append(image)
    return ImagePool(tuple(names), _preprocessed(np.array(pixels).reshape(count, *shape), dtype, preprocess))


def special_pool(per_image_shape: tuple[int, ...], dtype: np.dtype, preprocess: str) -> ImagePool:
    """Extreme batch-mates: flat black, flat white and a one-pixel checkerboard.

    Other inputs get zeros and ±1000 (integers: zeros and nines, the top of their synthetic range; booleans: all
    False and all True)."""
    shape, dtype = _checked(per_image_shape, dtype, preprocess)
    if _is_image(shape):
        h, w, _ = shape
        checker = (np.indices((h, w)).sum(axis=0) % 2 * 255.0)[..., None]
        pixels = np.stack([np.zeros(shape), np.full(shape, 255.0), np.broadcast_to(checker, shape)])
        return ImagePool(("flat black", "flat white", "extreme checkerboard"), _preprocessed(pixels, dtype, preprocess))
    if dtype.kind == "b":
        values = {"zeros": False, "ones": True}
    elif dtype.kind in "ui":
        values = {"zeros": 0, "nines": SMALL_INT_TOP}
    else:
        values = {"zeros": 0.0, "large +": LARGE, "large -": -LARGE}
    return ImagePool(tuple(values), np.stack([np.full(shape, v, dtype=dtype) for v in values.values()]))


def _checked(per_image_shape: tuple[int, ...], dtype: np.dtype, preprocess: str) -> tuple[tuple[int, ...], np.dtype]:
    """Validate the arguments every pool takes; return the shape as ints and the dtype as `np.dtype`."""
    check_argument(
        preprocess in PREPROCESSING, "unknown preprocessing `{}`; use one of: {}", preprocess, ", ".join(PREPROCESSING)
    )
    check_argument(
        all(isinstance(d, (int, np.integer)) and d > 0 for d in per_image_shape),
        "the model input has per-image shape {} with unknown or empty sizes; give the model a fixed input size",
        tuple(per_image_shape),
    )
    return tuple(int(d) for d in per_image_shape), np.dtype(dtype)


def _is_image(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[2] in IMAGE_CHANNELS


def _read_pixels(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The file as upright uint8 pixels of `shape` (H, W, C), resized bilinearly."""
    h, w, c = shape
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image = _eight_bit(image).convert(IMAGE_CHANNELS[c])
            return np.asarray(image.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8).reshape(shape)
    except UnidentifiedImageError:
        reason = "cannot identify image file"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    raise UsageError(
        f"image `{path}`: not an image Pillow can read ({reason}); remove it or point --images at a folder of images"
    )


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit grayscale scaled to 8-bit 'L' (Pillow's own convert clips it at 255); other modes unchanged.

    Mode 'I' is taken as 16-bit too: Pillow decodes some 16-bit PNG and TIFF files into it."""
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    values = np.asarray(image).astype(np.float64)
    return Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8), "L")


def _preprocessed(pixels: np.ndarray, dtype: np.dtype, preprocess: str) -> np.ndarray:
    """0..255 pixels [N, H, W, C], rounded to whole values, as the model wants them: integer inputs get the pixels,
    float inputs get `preprocess`."""
    x = np.round(np.asarray(pixels, dtype=np.float64))
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(x, info.min, info.max).astype(dtype)
    if preprocess == "unit":
        x = x / 255.0
    elif preprocess == "symmetric":
        x = x / 127.5 - 1.0
    elif preprocess == "caffe":
        if x.shape[-1] == 1:
            x = x - CAFFE_BGR_MEAN.mean()
        else:
            x = x[..., [2, 1, 0, *range(3, x.shape[-1])]].copy()
            x[..., :3] -= CAFFE_BGR_MEAN
    return x.astype(dtype)


def _fixed_images(shape: tuple[int, ...]) -> list[tuple[str, np.ndarray]]:
    """The seed-independent synthetic images: gradients, flat colours, checkerboard and saturated stripes."""
    h, w, c = shape
    y, x = np.meshgrid(np.linspace(0, 255, h), np.linspace(0, 255, w), indexing="ij")
    ramps = [x, y, (x + y) / 2]

    def image(per_channel: Callable[[int], np.ndarray | float]) -> np.ndarray:
        """Channels 0..2 from `per_channel`; a fourth (alpha) channel is opaque."""
        return np.stack([np.broadcast_to(per_channel(k) if k < 3 else 255.0, (h, w)) for k in range(c)], axis=-1)

    square = max(1, min(h, w) // 8)
    checker = ((np.arange(h)[:, None] // square + np.arange(w)[None, :] // square) % 2) * 255.0
    stripe = np.arange(w)[None, :] * 6 // max(w, 1)  # six vertical bands
    images = [
        ("gradient-h", image(lambda k: x)),
        ("gradient-v", image(lambda k: y)),
        ("gradient-d", image(lambda k: ramps[2])),
        ("flat gray", image(lambda k: 128.0)),
        ("checkerboard", image(lambda k: checker)),
    ]
    if c == 1:
        images += [
            ("gradient-inverse", image(lambda k: 255.0 - ramps[2])),
            ("flat dark", image(lambda k: 32.0)),
            ("stripes", image(lambda k: (stripe % 2) * 255.0)),
        ]
    else:
        # Bands of pure red, green, blue, yellow, cyan, magenta: every channel at 0 or 255.
        bands = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]], float)
        images += [
            ("gradient-channels", image(lambda k: ramps[k])),
            ("flat red", image(lambda k: 255.0 if k == 0 else 0.0)),
            ("saturated", image(lambda k: np.broadcast_to(bands[stripe, k], (h, w)))),
        ]
    return images


def _synthetic_tensors(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator, count: int) -> ImagePool:
    """Seeded tensors for inputs that are not images."""
    if dtype.kind == "b":
        array = rng.random((count, *shape)) < 0.5
        names = [f"bits-{i}" for i in range(count)]
    elif dtype.kind in "ui":
        array = rng.integers(0, SMALL_INT_TOP, (count, *shape), endpoint=True)
        names = [f"ints-{i}" for i in range(count)]
    else:
        scale = np.where(np.arange(count) % 4 == 3, NON_IMAGE_SCALE, 1.0).reshape(count, *[1] * len(shape))
        array = rng.standard_normal((count, *shape)) * scale
        names = [f"normal-{i}" + (" x100" if i % 4 == 3 else "") for i in range(count)]
    return ImagePool(tuple(names), array.astype(dtype))

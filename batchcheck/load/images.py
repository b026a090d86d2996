"""The pool of images fed to the model: read from a folder, made up from a seed, or the extreme batch-mates of fuzzing.

Every pool is built as 0..255 pixels first and then preprocessed the same way, so a file, a synthetic image and a
special one reach the model on the same scale.
"""
from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import (
    BatchcheckBug,
    BatchcheckWarning,
    UnreadableImage,
    UsageError,
    check_argument,
)
from ..model import InputSpec
from ..options import PREPROCESSING, CheckConfig

CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68])
IMAGE_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
DOC_FILE_STEMS = frozenset({"README", "LICENSE", "LICENCE"})
NON_IMAGE_SCALE = 100.0  # every fourth synthetic non-image tensor is this many times larger
SMALL_INT_TOP = 9  # integer non-image tensors stay in 0..9, safe as indices into any embedding
LARGE = 1e3
# Pillow's decompression-bomb cap, set deliberately: a larger image is refused before its pixels are decoded.
MAX_IMAGE_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# Every Pillow mode reaches L/RGB/RGBA by an explicit route (16-bit and float ones are scaled first).
VIA_RGB_MODES = frozenset({"CMYK", "YCbCr", "HSV", "LAB"})
NOT_REGULAR = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
               (stat.S_ISSOCK, "socket"))
MAX_NAMED = 3  # files named in a warning line
MAX_INPUT_ELEMENTS = 2**25  # per image (e.g. 3000×3000×3); a pool of a few dozen such inputs fits in memory


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

    def in_layout(self, layout: str) -> ImagePool:
        """The pool with its images' channels moved first for an `NCHW` input (built channels last)."""
        return self if layout != "NCHW" else ImagePool(self.names, np.ascontiguousarray(np.moveaxis(self.array, -1, 1)))

    def __add__(self, other: ImagePool) -> ImagePool:
        if self.array.shape[1:] != other.array.shape[1:] or self.array.dtype != other.array.dtype:
            mine, theirs = (f"{p.array.dtype}{p.array.shape[1:]}" for p in (self, other))
            raise BatchcheckBug(f"cannot join pools of {mine} and {theirs}")
        return ImagePool(self.names + other.names, np.concatenate([self.array, other.array]))


def input_pool(spec: InputSpec, config: CheckConfig, directory: Path | None = None) -> ImagePool:
    """The images to feed `spec`'s input, in its layout and dtype: those in `directory` (else `--images`), else the
    seeded synthetic set."""
    directory = directory or config.images
    shape, dtype = spec.image_shape, spec.numpy_dtype
    pool = (pool_from_dir(directory, shape, dtype, config.scaling, skip_bad=config.skip_bad_images) if directory
            else synthetic_pool(shape, dtype, config.scaling, config.seed))
    return pool.in_layout(spec.layout)


def special_input_pool(spec: InputSpec, config: CheckConfig) -> ImagePool:
    """The special batch-mates (flat colours, extremes) for `spec`'s input, in its layout and dtype."""
    return special_pool(spec.image_shape, spec.numpy_dtype, config.scaling).in_layout(spec.layout)


def pool_from_dir(directory: Path, per_image_shape: tuple[int, ...], dtype: np.dtype, preprocess: str,
                  *, skip_bad: bool = False) -> ImagePool:
    """Every image file in `directory` (sorted, not recursive), upright per EXIF, resized and preprocessed.

    Hidden files, sub-folders and README/LICENSE files are skipped; any other file that cannot be read (FIFOs and
    devices are never opened) is an error, or with `skip_bad` skipped with one warning line. Animated and
    multi-page files give their first frame, said in one warning line.
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
    candidates = sorted(p for p in directory.iterdir()
                        if not p.name.startswith(".") and p.stem.upper() not in DOC_FILE_STEMS and not p.is_dir())
    names, pixels, skipped, animated = [], [], [], []
    for path in candidates:
        try:
            image, frames = _read_pixels(path, shape)
        except UnreadableImage as error:
            if not skip_bad:
                raise UsageError(f"{error}; remove it or point --images at a folder of images") from None
            skipped.append(f"`{path.name}` ({error.reason})")
            continue
        names.append(path.name)
        pixels.append(image)
        if frames > 1:
            animated.append(f"`{path.name}` ({frames} frames)")
    if skipped:
        _warn(f"skipped {len(skipped)} unreadable file(s) in {where} (--skip-bad-images)", skipped)
    if animated:
        _warn(f"used the first frame of {len(animated)} animated or multi-page image(s)", animated)
    check_argument(candidates, "{}: has no image files; put images in it or point --images at another folder", where)
    check_argument(pixels, "{}: has no readable image files (all were skipped); put images in it or point --images "
                   "at another folder", where)
    return ImagePool(tuple(names), _preprocessed(np.stack(pixels), dtype, preprocess))


def _warn(headline: str, items: list[str]) -> None:
    more = f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else ""
    warnings.warn(BatchcheckWarning(f"{headline}: {', '.join(items[:MAX_NAMED])}{more}"), stacklevel=3)


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
    elements = int(np.prod([int(d) for d in per_image_shape], dtype=object))
    check_argument(elements <= MAX_INPUT_ELEMENTS, "the model input has per-image shape {} ({:,} values), over the "
                   "{:,} batchcheck builds inputs for; give a smaller size with --input-shape",
                   tuple(per_image_shape), elements, MAX_INPUT_ELEMENTS)
    return tuple(int(d) for d in per_image_shape), np.dtype(dtype)


def _is_image(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[2] in IMAGE_CHANNELS


def _read_pixels(path: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """The file as upright uint8 pixels of `shape` (H, W, C), resized bilinearly, and its number of frames.

    A file that is not a regular one (FIFO, device, socket) is refused without being opened; images over
    `MAX_IMAGE_PIXELS` are refused from their header; JPEGs decode at a reduced scale when much larger than needed."""
    h, w, c = shape
    kind = _not_regular(path)
    if kind:
        raise UnreadableImage(path, f"a {kind}, never opened")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on palette transparency
            with Image.open(path) as opened:
                frames = getattr(opened, "n_frames", 1)
                opened.draft(None, (w, h))  # JPEG: decode at 1/2, 1/4 or 1/8 scale when that is still enough
                image = _reduced(_converted(ImageOps.exif_transpose(opened), IMAGE_CHANNELS[c]), w, h)
                array = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
                return array.reshape(shape), frames
    except UnidentifiedImageError:
        reason = "cannot identify image file"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        reason = f"over the {MAX_IMAGE_PIXELS:,}-pixel cap against decompression bombs"
    except Exception as error:  # noqa: BLE001 - Pillow decoding hostile bytes raises many types; each is "unreadable"
        reason = str(error).splitlines()[0][:120] if str(error).strip() else type(error).__name__
    raise UnreadableImage(path, reason)


def _not_regular(path: Path) -> str | None:
    """'FIFO', 'character device'… for a path that is no regular file (checked with stat, never opened)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f"path that cannot be read: {error.strerror}"
    return next((kind for test, kind in NOT_REGULAR if test(mode)), None)


def _reduced(image: Image.Image, w: int, h: int) -> Image.Image:
    """`image` (L, RGB or RGBA) shrunk by a whole factor while it stays at least twice the target size (a cheap box
    reduction before the bilinear resize)."""
    factor = min(image.width // (2 * w), image.height // (2 * h))
    return image.reduce(factor) if factor >= 2 else image


def _converted(image: Image.Image, mode: str) -> Image.Image:
    """`image` in `mode` (L, RGB or RGBA) by an explicit route for each Pillow mode."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "F":
        image = _eight_bit(image)
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    elif image.mode in VIA_RGB_MODES:
        image = _via_rgb(image)
    return image if image.mode == mode else image.convert(mode)


def _via_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "LAB":
        from PIL import ImageCms

        return ImageCms.applyTransform(image, ImageCms.buildTransformFromOpenProfiles(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"))
    return image.convert("RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit or float grayscale as 8-bit 'L': 16-bit scaled by 1/257 (Pillow's own convert clips it at 255),
    float taken as 0..1 when its maximum is at most 1, else as 0..255 (NaN → 0).

    Mode 'I' is taken as 16-bit too: Pillow decodes some 16-bit PNG and TIFF files into it."""
    values = np.nan_to_num(np.asarray(image).astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if image.mode == "F":
        scaled = values * 255.0 if values.size and values.max() <= 1.0 else values
    else:
        scaled = values / 257.0
    return Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8), "L")


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

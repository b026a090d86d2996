"""Image input: the fixture photos, the synthetic and special pools, and the user errors, on real files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from batchcheck.errors import UsageError
from batchcheck.load.images import (
    PREPROCESSING,
    ImagePool,
    pool_from_dir,
    special_pool,
    synthetic_pool,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
IMAGES = FIXTURES / "images"
BAD = FIXTURES / "images_bad"
EXPECTED_FILES = (
    "hopper-cmyk.jpg",
    "hopper-exif-rotated.jpg",
    "hopper-gray.png",
    "hopper-gray16.png",
    "hopper-palette.gif",
    "hopper-rgb.jpg",
    "hopper-rgba.png",
    "hopper-small.tif",
    "hopper-small.webp",
    "hopper-tiny-17x9.bmp",
)
CAFFE_MEAN = (103.939, 116.779, 123.68)
# Range of each preprocessing for 0..255 pixels (RGB).
RANGES = {"raw": (0.0, 255.0), "unit": (0.0, 1.0), "symmetric": (-1.0, 1.0), "caffe": (-123.68, 255 - 103.939)}


def image(pool: ImagePool, name: str) -> np.ndarray:
    return pool.array[pool.names.index(name)]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def one_line(error: pytest.ExceptionInfo[UsageError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def rgb_pixels() -> ImagePool:
    return pool_from_dir(IMAGES, (64, 64, 3), np.uint8, "raw")


def test_fixture_files_are_what_the_readme_says() -> None:
    modes = {}
    for name in EXPECTED_FILES:
        path = IMAGES / name
        assert path.stat().st_size <= 30_000
        with Image.open(path) as im:
            assert max(im.size) <= 160
            modes[name] = (im.mode, im.size)
    assert modes["hopper-gray16.png"][0] == "I;16"
    assert modes["hopper-palette.gif"][0] == "P"
    assert modes["hopper-rgba.png"][0] == "RGBA"
    assert modes["hopper-cmyk.jpg"][0] == "CMYK"
    assert modes["hopper-tiny-17x9.bmp"][1] == (17, 9)
    assert modes["hopper-exif-rotated.jpg"][1] == (112, 96)  # stored landscape


@pytest.mark.parametrize("preprocess", PREPROCESSING)
@pytest.mark.parametrize("shape", [(64, 64, 3), (48, 48, 1)])
def test_folder_loads_as_float_with_preprocessing(shape: tuple[int, ...], preprocess: str) -> None:
    pool = pool_from_dir(IMAGES, shape, np.dtype(np.float32), preprocess)
    assert pool.names == EXPECTED_FILES  # sorted; README.md skipped
    assert len(pool) == len(EXPECTED_FILES)
    assert pool.array.shape == (len(EXPECTED_FILES), *shape)
    assert pool.array.dtype == np.float32
    low, high = RANGES[preprocess]
    if preprocess == "caffe" and shape[-1] == 1:
        low, high = -np.mean(CAFFE_MEAN), 255 - np.mean(CAFFE_MEAN)
    assert pool.array.min() >= low - 1e-4 and pool.array.max() <= high + 1e-4
    assert pool.array.max() - pool.array.min() > 0.5 * (high - low)  # real photos use most of the range


@pytest.mark.parametrize("shape", [(64, 64, 3), (48, 48, 1), (40, 30, 4)])
def test_uint8_gets_the_pixels_whatever_the_preprocessing(shape: tuple[int, ...]) -> None:
    pixels = pool_from_dir(IMAGES, shape, np.dtype(np.uint8), "caffe")
    assert pixels.array.dtype == np.uint8 and pixels.array.shape == (len(EXPECTED_FILES), *shape)
    assert pixels.array.max() > 200 and pixels.array.min() < 30
    raw = pool_from_dir(IMAGES, shape, np.dtype(np.float64), "raw")
    np.testing.assert_array_equal(raw.array, pixels.array.astype(np.float64))


def test_preprocessings_are_the_documented_formulas(rgb_pixels: ImagePool) -> None:
    x = rgb_pixels.array.astype(np.float64)
    pools = {p: pool_from_dir(IMAGES, (64, 64, 3), np.float64, p).array for p in PREPROCESSING}
    np.testing.assert_allclose(pools["unit"], x / 255)
    np.testing.assert_allclose(pools["symmetric"], x / 127.5 - 1)
    np.testing.assert_allclose(pools["caffe"], x[..., ::-1] - CAFFE_MEAN)
    gray = pool_from_dir(IMAGES, (48, 48, 1), np.uint8, "raw").array.astype(np.float64)
    caffe_gray = pool_from_dir(IMAGES, (48, 48, 1), np.float64, "caffe").array
    np.testing.assert_allclose(caffe_gray, gray - np.mean(CAFFE_MEAN))


def test_sixteen_bit_gray_spans_a_real_range() -> None:
    pool = pool_from_dir(IMAGES, (48, 48, 1), np.uint8, "raw")
    gray16 = image(pool, "hopper-gray16.png").astype(int)
    assert gray16.min() < 20 and gray16.max() > 230  # stored as 1000..64000, i.e. about 4..249
    assert len(np.unique(gray16)) > 100
    assert correlation(gray16, image(pool, "hopper-gray.png")) > 0.95
    with Image.open(IMAGES / "hopper-gray16.png") as im:  # what we guard against
        assert (np.asarray(im.convert("L")) == 255).mean() > 0.9


def test_exif_orientation_is_applied() -> None:
    # A non-square target: the upright photo fills it without turning, the stored pixels would not.
    pool = pool_from_dir(IMAGES, (112, 96, 3), np.uint8, "raw")
    reference = image(pool, "hopper-rgb.jpg")
    rotated = image(pool, "hopper-exif-rotated.jpg")
    assert np.abs(rotated.astype(int) - reference).mean() < 6
    with Image.open(IMAGES / "hopper-exif-rotated.jpg") as im:
        ignored = np.asarray(im.convert("RGB").resize((96, 112), Image.Resampling.BILINEAR))
    assert correlation(rotated, reference) > 0.97
    assert correlation(ignored, reference) < 0.6


@pytest.mark.parametrize(
    "name", ["hopper-rgba.png", "hopper-palette.gif", "hopper-cmyk.jpg", "hopper-small.webp", "hopper-small.tif"]
)
def test_other_modes_and_formats_convert_to_the_same_photo(rgb_pixels: ImagePool, name: str) -> None:
    converted = image(rgb_pixels, name).astype(int)
    reference = image(rgb_pixels, "hopper-rgb.jpg")
    assert np.abs(converted - reference).mean() < 12
    assert correlation(converted, reference) > 0.95


def test_rgba_alpha_is_dropped_for_rgb_and_kept_for_rgba(rgb_pixels: ImagePool) -> None:
    # The right edge is fully transparent, yet RGB keeps the photo's colours there.
    rgb = image(rgb_pixels, "hopper-rgba.png")
    assert rgb[:, -4:].mean() > 20
    with Image.open(IMAGES / "hopper-rgba.png") as im:
        alpha = np.asarray(im.resize((64, 64), Image.Resampling.BILINEAR))[..., 3]
    rgba = image(pool_from_dir(IMAGES, (64, 64, 4), np.uint8, "raw"), "hopper-rgba.png")
    np.testing.assert_array_equal(rgba[..., 3], alpha)
    assert rgba[..., 3].min() == 0 and rgba[..., 3].max() > 250
    assert (image(pool_from_dir(IMAGES, (64, 64, 4), np.uint8, "raw"), "hopper-rgb.jpg")[..., 3] == 255).all()


def test_gray_file_gives_equal_channels_and_rgb_gives_luminance(rgb_pixels: ImagePool) -> None:
    gray = image(rgb_pixels, "hopper-gray.png")
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    luma = image(pool_from_dir(IMAGES, (64, 64, 1), np.uint8, "raw"), "hopper-rgb.jpg")
    assert correlation(luma[..., 0], gray[..., 0]) > 0.97


def test_tiny_image_is_upscaled_to_the_input() -> None:
    pool = pool_from_dir(IMAGES, (90, 70, 3), np.float32, "unit")
    tiny = image(pool, "hopper-tiny-17x9.bmp")
    assert tiny.shape == (90, 70, 3)
    assert len(np.unique(tiny)) > 100  # bilinear, not nearest: smooth new values


def test_hidden_files_and_subfolders_are_skipped(tmp_path: Path) -> None:
    shutil.copy(IMAGES / "hopper-rgb.jpg", tmp_path / "b.jpg")
    shutil.copy(IMAGES / "hopper-gray.png", tmp_path / "a.png")
    (tmp_path / ".DS_Store").write_bytes(b"\0\1junk")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("not looked at")
    (tmp_path / "LICENSE").write_text("not an image, skipped")
    pool = pool_from_dir(tmp_path, (8, 8, 3), np.float32, "raw")
    assert pool.names == ("a.png", "b.jpg")


def test_bad_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as error:
        pool_from_dir(BAD, (32, 32, 3), np.float32, "raw")
    assert one_line(error) == (
        f"image `{BAD / 'notes.txt'}`: not an image Pillow can read (cannot identify image file); "
        "remove it or point --images at a folder of images"
    )
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((IMAGES / "hopper-rgb.jpg").read_bytes()[:600])
    with pytest.raises(UsageError) as error:
        pool_from_dir(tmp_path, (32, 32, 3), np.float32, "raw")
    assert one_line(error).startswith(f"image `{truncated}`: not an image Pillow can read (")


def test_bad_folder_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    for folder, words in [
        (missing, "does not exist"),
        (IMAGES / "hopper-rgb.jpg", "is a file, not a folder"),
        (tmp_path, "has no image files"),
    ]:
        with pytest.raises(UsageError) as error:
            pool_from_dir(folder, (32, 32, 3), np.float32, "raw")
        assert one_line(error).startswith(f"image folder `{folder}`: {words}; ")
    (tmp_path / ".hidden.png").write_bytes((IMAGES / "hopper-gray.png").read_bytes())
    with pytest.raises(UsageError, match="has no image files"):
        pool_from_dir(tmp_path, (32, 32, 3), np.float32, "raw")


@pytest.mark.parametrize("shape", [(784,), (28, 28), (8, 8, 2), (4, 8, 8, 3)])
def test_folder_needs_an_image_input(shape: tuple[int, ...]) -> None:
    with pytest.raises(UsageError) as error:
        pool_from_dir(IMAGES, shape, np.float32, "raw")
    assert one_line(error).startswith("--images needs an image input (H, W, C with C = 1 or 3")
    assert one_line(error).endswith(f"the model input has per-image shape {shape}")


def test_unknown_preprocessing_lists_the_valid_ones() -> None:
    for make in (
        lambda: pool_from_dir(IMAGES, (8, 8, 3), np.uint8, "torch"),
        lambda: synthetic_pool((8, 8, 3), np.float32, "torch", seed=0),
        lambda: special_pool((8,), np.float32, "torch"),
    ):
        with pytest.raises(UsageError) as error:
            make()
        assert one_line(error) == "unknown preprocessing `torch`; use one of: raw, unit, symmetric, caffe"


def test_unknown_sizes_are_refused() -> None:
    with pytest.raises(UsageError, match=r"per-image shape \(None, None, 3\) with unknown"):
        synthetic_pool((None, None, 3), np.float32, "raw", seed=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_synthetic_images_cover_the_kinds(channels: int) -> None:
    pool = synthetic_pool((16, 24, channels), np.uint8, "raw", seed=0)
    assert len(pool) == 12 and len(set(pool.names)) == 12
    named = dict(zip(pool.names, pool.array.astype(int), strict=True))
    kinds = {"noise-0", "gaussian-1", "gradient-h", "gradient-v", "gradient-d", "flat gray", "checkerboard"}
    assert kinds <= set(named)
    color = named["gradient-h"][..., :3]
    assert (np.diff(color, axis=1) >= 0).all() and (np.diff(color, axis=0) == 0).all()
    assert color.min() == 0 and color.max() == 255
    vertical = named["gradient-v"][..., :3]
    assert (np.diff(vertical, axis=0) >= 0).all() and (np.diff(vertical, axis=1) == 0).all()
    assert (named["flat gray"][..., :3] == 128).all()
    assert set(np.unique(named["checkerboard"][..., :3])) == {0, 255}
    assert named["noise-0"].std() > 50 and len(np.unique(named["noise-0"])) > 100
    if channels == 1:
        assert {"gradient-inverse", "flat dark", "stripes"} <= set(named)
    else:
        assert {"gradient-channels", "flat red", "saturated"} <= set(named)
        assert (named["flat red"][..., :3] == [255, 0, 0]).all()
        assert set(np.unique(named["saturated"][..., :3])) == {0, 255}
        assert len({tuple(p) for p in named["saturated"][..., :3].reshape(-1, 3)}) == 6
    if channels == 4:
        assert (named["gradient-d"][..., 3] == 255).all()


def test_synthetic_pool_depends_only_on_the_seed() -> None:
    a = synthetic_pool((32, 32, 3), np.float32, "unit", seed=7)
    b = synthetic_pool((32, 32, 3), np.float32, "unit", seed=7)
    c = synthetic_pool((32, 32, 3), np.float32, "unit", seed=8)
    assert a.names == b.names == c.names
    np.testing.assert_array_equal(a.array, b.array)
    assert not np.array_equal(a.array[0], c.array[0])
    np.testing.assert_array_equal(a.array[2:10], c.array[2:10])  # the fixed kinds do not depend on it


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    channels=st.sampled_from([1, 3, 4]),
    dtype=st.sampled_from([np.float32, np.float16, np.float64, np.uint8]),
    preprocess=st.sampled_from(PREPROCESSING),
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(0, 20),
)
def test_synthetic_images_match_their_pixels(
    h: int, w: int, channels: int, dtype: type, preprocess: str, seed: int, count: int
) -> None:
    shape = (h, w, channels)
    pool = synthetic_pool(shape, np.dtype(dtype), preprocess, seed, count)
    assert len(pool) == count and len(set(pool.names)) == count
    assert pool.array.shape == (count, *shape) and pool.array.dtype == dtype
    pixels = synthetic_pool(shape, np.uint8, "raw", seed, count).array.astype(np.float64)
    if channels == 1:
        caffe = pixels - np.mean(CAFFE_MEAN)
    else:
        caffe = pixels[..., [2, 1, 0, 3][:channels]] - [*CAFFE_MEAN, 0][:channels]
    expected = {"raw": pixels, "unit": pixels / 255, "symmetric": pixels / 127.5 - 1, "caffe": caffe}
    expected = expected["raw" if dtype == np.uint8 else preprocess]
    atol = 0.1 if dtype == np.float16 else 1e-4
    np.testing.assert_allclose(pool.array.astype(np.float64), expected, rtol=1e-3, atol=atol)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), max_size=4).map(tuple).filter(lambda s: not (len(s) == 3 and s[2] in (1, 3, 4))),
    dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_]),
    seed=st.integers(0, 1000),
)
def test_non_image_inputs_get_tensors(shape: tuple[int, ...], dtype: type, seed: int) -> None:
    pool = synthetic_pool(shape, np.dtype(dtype), "caffe", seed)
    assert pool.array.shape == (12, *shape) and pool.array.dtype == dtype
    if np.dtype(dtype).kind == "f":
        assert pool.names[:4] == ("normal-0", "normal-1", "normal-2", "normal-3 x100")
    np.testing.assert_array_equal(pool.array, synthetic_pool(shape, np.dtype(dtype), "raw", seed).array)
    special = special_pool(shape, np.dtype(dtype), "raw")
    assert special.array.shape == (len(special), *shape) and special.array.dtype == dtype
    assert special.names[0] == "zeros" and not special.array[0].any()


def test_non_image_tensors_have_a_few_large_rows() -> None:
    pool = synthetic_pool((784,), np.float32, "raw", seed=3)
    scale = np.abs(pool.array).max(axis=1)
    large = [i for i, name in enumerate(pool.names) if name.endswith("x100")]
    assert large == [3, 7, 11]
    assert scale[large].min() > 10 * np.delete(scale, large).max()
    ints = synthetic_pool((5, 7), np.int32, "raw", seed=3).array
    assert ints.min() >= 0 and ints.max() <= 9 and len(np.unique(ints)) == 10
    bits = synthetic_pool((50,), np.bool_, "raw", seed=3).array
    assert 0.3 < bits.mean() < 0.7


def test_special_pools() -> None:
    images = special_pool((5, 6, 3), np.float32, "symmetric")
    assert images.names == ("flat black", "flat white", "extreme checkerboard")
    assert (images.array[0] == -1).all() and (images.array[1] == 1).all()
    checker = images.array[2]
    assert (checker[0, 0] == -1).all() and (checker[0, 1] == 1).all() and (checker[1, 0] == 1).all()
    assert (special_pool((5, 6, 1), np.uint8, "caffe").array[1] == 255).all()
    floats = special_pool((3, 2), np.float16, "raw")
    assert floats.names == ("zeros", "large +", "large -")
    np.testing.assert_array_equal(floats.array[:, 0, 0], [0, 1e3, -1e3])
    assert special_pool((4,), np.int64, "raw").names == ("zeros", "nines")


def test_pools_concatenate() -> None:
    a = synthetic_pool((8, 8, 3), np.float32, "unit", seed=1, count=3)
    b = special_pool((8, 8, 3), np.float32, "unit")
    joined = a + b
    assert len(joined) == 6 and joined.names == a.names + b.names
    np.testing.assert_array_equal(joined.array, np.concatenate([a.array, b.array]))

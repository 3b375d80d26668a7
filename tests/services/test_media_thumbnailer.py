"""The thumbnailer without a server: which configured size answers a request, the sizes
it makes, and its refusals (not an image, too many pixels)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from ranvier.services.media.thumbnailer import (
    Box,
    ImageTooLarge,
    NotAnImage,
    choose_box,
    probe,
    render,
    scaled_dimensions,
)

SPEC_SIZES = [
    Box(32, 32, "crop"),
    Box(96, 96, "crop"),
    Box(320, 240, "scale"),
    Box(640, 480, "scale"),
    Box(800, 600, "scale"),
]


@pytest.mark.parametrize(
    ("width", "height", "method", "expected"),
    [
        (32, 32, "crop", Box(32, 32, "crop")),
        (33, 20, "crop", Box(96, 96, "crop")),
        (10, 10, "crop", Box(32, 32, "crop")),
        (200, 200, "crop", Box(96, 96, "crop")),  # none big enough: the biggest
        (320, 240, "scale", Box(320, 240, "scale")),
        (321, 10, "scale", Box(640, 480, "scale")),
        (700, 500, "scale", Box(800, 600, "scale")),
        (5000, 5000, "scale", Box(800, 600, "scale")),
    ],
)
def test_the_configured_size_that_answers_a_request(
    width: int, height: int, method: str, expected: Box
) -> None:
    assert choose_box(SPEC_SIZES, width, height, method) == expected  # type: ignore[arg-type]


def test_a_method_without_configured_sizes_uses_the_others() -> None:
    assert choose_box([Box(100, 80, "scale")], 50, 50, "crop") == Box(100, 80, "scale")


def test_crop_prefers_the_closest_aspect_ratio() -> None:
    sizes = [Box(100, 100, "crop"), Box(200, 100, "crop")]
    assert choose_box(sizes, 60, 30, "crop") == Box(200, 100, "crop")
    assert choose_box(sizes, 30, 30, "crop") == Box(100, 100, "crop")


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((1000, 800), Box(320, 240, "scale"), (300, 240)),
        ((800, 1000), Box(320, 240, "scale"), (192, 240)),
        ((100, 50), Box(320, 240, "scale"), (100, 50)),  # never upscaled
        ((1000, 800), Box(96, 96, "crop"), (96, 96)),
        ((50, 200), Box(96, 96, "crop"), (50, 50)),  # the box's shape at the image's scale
    ],
)
def test_the_size_made_for_a_box(
    size: tuple[int, int], box: Box, expected: tuple[int, int]
) -> None:
    assert scaled_dimensions(*size, box) == expected


def write(tmp_path: Path, image: Image.Image, fmt: str, **options: object) -> Path:
    path = tmp_path / f"image.{fmt.lower()}"
    image.save(path, fmt, **options)
    return path


def test_probe_reads_the_real_format_and_frames(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 30), (i * 60, 0, 0)) for i in range(3)]
    path = write(tmp_path, frames[0], "GIF", save_all=True, append_images=frames[1:])
    info = probe(path, 10_000)
    assert (info.content_type, info.width, info.height, info.frames) == ("image/gif", 40, 30, 3)
    assert info.animated


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path: Path) -> None:
    path = write(tmp_path, Image.new("L", (101, 100)), "PNG")
    with pytest.raises(ImageTooLarge):
        probe(path, 10_000)
    with pytest.raises(ImageTooLarge):
        render(path, Box(32, 32, "crop"), animated=False, max_pixels=10_000)
    assert probe(path, 10_100).width == 101


@pytest.mark.parametrize(
    "data",
    [b"not an image", b"\x89PNG\r\n\x1a\n truncated", b"<svg/>", b"BM\x00\x00 a bitmap header"],
)
def test_anything_but_jpeg_png_gif_and_webp_is_not_an_image(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "file"
    path.write_bytes(data)
    with pytest.raises(NotAnImage):
        probe(path, 10_000)


def test_a_bitmap_is_not_decoded_even_though_pillow_could(tmp_path: Path) -> None:
    path = write(tmp_path, Image.new("RGB", (10, 10)), "BMP")
    with pytest.raises(NotAnImage):
        probe(path, 10_000)


def test_animated_frames_beyond_the_pixel_budget_give_a_still_thumbnail(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (100, 100), (i * 20, 0, 0)) for i in range(10)]
    path = write(tmp_path, frames[0], "GIF", save_all=True, append_images=frames[1:])
    # 10 frames of 10,000 pixels: within 100,000 they are all kept, within 50,000 not
    animated = render(path, Box(32, 32, "crop"), animated=True, max_pixels=100_000)
    assert animated.content_type == "image/webp"
    assert Image.open(io.BytesIO(animated.data)).n_frames == 10
    still = render(path, Box(32, 32, "crop"), animated=True, max_pixels=50_000)
    assert still.content_type == "image/png"
    assert not getattr(Image.open(io.BytesIO(still.data)), "is_animated", False)


def test_a_jpeg_is_turned_upright_by_its_exif_orientation(tmp_path: Path) -> None:
    image = Image.new("RGB", (200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the picture is 100 wide, 200 high
    path = write(tmp_path, image, "JPEG", exif=exif.tobytes())
    made = render(path, Box(320, 240, "scale"), animated=False, max_pixels=1_000_000)
    assert (made.content_type, made.width, made.height) == ("image/jpeg", 100, 200)

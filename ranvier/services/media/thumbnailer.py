"""Thumbnails with Pillow: which configured size answers a request, and the image work.

Everything here blocks (decoding and resizing are CPU work): the service calls `probe`
and `render` through asyncio.to_thread. Only JPEG, PNG (APNG too), GIF and WebP are
decoded, whatever type the uploader claimed, and an image is refused before decoding
when it has more pixels than `max_image_pixels` allows.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

Method = Literal["crop", "scale"]

# Pillow format name -> the type the original is served as when it is small enough
FORMAT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
JPEG_QUALITY = 80


class NotAnImage(Exception):
    """The content is not an image this server thumbnails."""


class ImageTooLarge(Exception):
    """The image has more pixels than max_image_pixels."""


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    width: int
    height: int
    frames: int

    @property
    def animated(self) -> bool:
        return self.frames > 1


@dataclass(frozen=True)
class Box:
    width: int
    height: int
    method: Method


@dataclass(frozen=True)
class Rendered:
    data: bytes
    content_type: str
    width: int
    height: int


def extension_for(content_type: str) -> str:
    return _EXTENSIONS.get(content_type, "bin")


def choose_box(sizes: Sequence[Box], width: int, height: int, method: Method) -> Box:
    """The configured size that answers a request: one at least as big as asked where
    there is one (spec: never smaller than requested), for crop the closest in aspect
    ratio, then the smallest; with none big enough, the biggest."""
    candidates = [box for box in sizes if box.method == method] or list(sizes)
    wanted_aspect = width / height

    def key(box: Box) -> tuple[float, ...]:
        area = box.width * box.height
        big_enough = box.width >= width and box.height >= height
        aspect = abs(box.width / box.height - wanted_aspect) if method == "crop" else 0.0
        return (0, aspect, area) if big_enough else (1, -area, aspect)

    return min(candidates, key=key)


def set_pixel_limit(max_pixels: int) -> None:
    """Pillow's own decompression bomb guard, for decoders that read past the header."""
    Image.MAX_IMAGE_PIXELS = max_pixels


def _open(path: Path, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x MAX_IMAGE_PIXELS; refuse those too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path, formats=list(FORMAT_TYPES))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise NotAnImage from None
    if image.width * image.height > max_pixels:
        image.close()
        raise ImageTooLarge
    return image


def probe(path: Path, max_pixels: int) -> ImageInfo:
    """What the image is, from its header (nothing is decoded)."""
    with _open(path, max_pixels) as image:
        assert image.format is not None
        frames = getattr(image, "n_frames", 1) if getattr(image, "is_animated", False) else 1
        return ImageInfo(FORMAT_TYPES[image.format], image.width, image.height, frames)


def _crop_region(
    width: int, height: int, box: Box
) -> tuple[tuple[float, float, float, float], tuple[int, int]]:
    """The part of a width x height image to keep and the size to make it."""
    if box.method == "scale":
        factor = min(box.width / width, box.height / height, 1.0)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        return (0, 0, width, height), size
    factor = max(box.width / width, box.height / height)
    if factor > 1:
        # covering the box would mean upscaling (spec: never); keep the box's aspect
        # ratio at the image's own resolution instead
        aspect = box.width / box.height
        crop_w = min(width, height * aspect)
        crop_h = min(height, width / aspect)
        size = (max(1, round(crop_w)), max(1, round(crop_h)))
    else:
        crop_w, crop_h = box.width / factor, box.height / factor
        size = (box.width, box.height)
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return (left, top, left + crop_w, top + crop_h), size


def _static_mode(image: Image.Image, for_jpeg: bool) -> Image.Image:
    if for_jpeg:
        return image if image.mode in ("RGB", "L") else image.convert("RGB")
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    has_alpha = "transparency" in image.info or image.mode.endswith("A")
    return image.convert("RGBA" if has_alpha else "RGB")


def render(path: Path, box: Box, *, animated: bool, max_pixels: int) -> Rendered:
    """A thumbnail of the image at `path` for `box`. `animated`: keep every frame (as
    animated WebP) if the image has several and decoding them all stays within
    max_image_pixels; otherwise the first frame only, as JPEG for a JPEG and PNG else."""
    with _open(path, max_pixels) as image:
        assert image.format is not None
        frames = getattr(image, "n_frames", 1) if getattr(image, "is_animated", False) else 1
        if animated and frames > 1 and frames * image.width * image.height <= max_pixels:
            return _render_animated(image, box)
        try:
            image.seek(0)
            static = image if image.format != "JPEG" else ImageOps.exif_transpose(image)
            static.load()
        except (OSError, SyntaxError, ValueError):
            raise NotAnImage from None
        is_jpeg = image.format == "JPEG"
        region, size = _crop_region(static.width, static.height, box)
        source = _static_mode(static, is_jpeg)
        resized = source.resize(size, Image.Resampling.LANCZOS, box=region)
        out = io.BytesIO()
        if is_jpeg:
            resized.save(out, "JPEG", quality=JPEG_QUALITY)
            content_type = "image/jpeg"
        else:
            resized.save(out, "PNG", optimize=False)
            content_type = "image/png"
        return Rendered(out.getvalue(), content_type, size[0], size[1])


def _render_animated(image: Image.Image, box: Box) -> Rendered:
    region, size = _crop_region(image.width, image.height, box)
    frames: list[Image.Image] = []
    durations: list[int] = []
    try:
        for frame in ImageSequence.Iterator(image):
            frames.append(frame.convert("RGBA").resize(size, Image.Resampling.LANCZOS, box=region))
            durations.append(int(frame.info.get("duration", 100)) or 100)
    except (OSError, SyntaxError, ValueError):
        raise NotAnImage from None
    out = io.BytesIO()
    # spec: servers SHOULD prefer image/webp for animated thumbnails
    frames[0].save(
        out,
        "WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=int(image.info.get("loop", 0)),
        quality=JPEG_QUALITY,
    )
    return Rendered(out.getvalue(), "image/webp", size[0], size[1])


def fits_within(info: ImageInfo, width: int, height: int) -> bool:
    """Whether the image is no bigger than asked (then the original is the answer)."""
    return info.width <= width and info.height <= height


def scaled_dimensions(width: int, height: int, box: Box) -> tuple[int, int]:
    """The size `render` makes of a width x height image for `box` (for tests and
    callers that want to know without rendering)."""
    return _crop_region(width, height, box)[1]

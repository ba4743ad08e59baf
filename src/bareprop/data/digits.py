"""Your own digit as an MNIST input: a picture of any size or colours -> (784,) in [0, 1].

The MNIST recipe: greyscale; ink bright on a dark background (inverted when the background is
light); cropped to the ink; fitted into 20x20 keeping the aspect ratio; placed in 28x28 with its
centre of mass at the centre. An MNIST test digit written out as a PNG comes back unchanged.
Pillow is imported only here, and only to read files and to resize.
"""

import io
import warnings
from pathlib import Path

import numpy as np

from .reading import read_file

SIDE, BOX = 28, 20  # MNIST images are 28x28; the digit is fitted into a 20x20 box
MAX_BYTES = 64 * 2**20  # the largest picture file read
MAX_PIXELS = 4096 * 4096  # the most pixels a picture may have, checked from its header before decoding


class ImageError(ValueError):
    """An image file cannot be read, or holds no digit."""


def read_digit(path):
    """The image file at `path` as an MNIST input row (784,) float32; ImageError naming the file.

    Only a regular file of at most MAX_BYTES, holding at most MAX_PIXELS pixels, is decoded."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)

    def fail(problem):
        return ImageError(f"{path}: {problem}")

    try:
        raw = read_file(path, MAX_BYTES, "a picture", fail)
    except OSError as e:
        raise fail(f"cannot read ({e.strerror or e})") from None
    too_many = f"more than the {MAX_PIXELS:,} pixels (4096x4096) bareprop reads from a picture"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in one line
            image = Image.open(io.BytesIO(raw))  # lazy: the header alone is read
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise fail(f"{width}x{height} pixels, {too_many}")
        image.load()
        image = ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise fail("not an image Pillow can read (PNG, JPEG, ...)") from None
    except Image.DecompressionBombError as e:
        raise fail(f"{too_many} ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise fail(f"cannot read the image ({e})") from None
    try:
        return mnist_digit(_greyscale(image))
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None


def _greyscale(image):  # a Pillow image -> (H, W) float32 in [0, 255]
    """Luminance, 16-bit greyscale scaled from 0..65535; a transparent background becomes the
    opposite of the ink, so the ink shows."""
    if image.mode == "I" or image.mode.startswith("I;16"):  # 16-bit greyscale (a PNG's "I;16")
        levels = np.asarray(image).astype(np.float32)  # (H, W) in [0, 65535]
        grey = np.clip(levels, 0, 65535) * np.float32(255 / 65535)  # (H, W) in [0, 255]
        transparent = image.info.get("transparency")  # a PNG may name one level transparent
        if not isinstance(transparent, int):
            return grey
        return _over_background(grey, (levels != transparent).astype(np.float32))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)  # (H, W, 4)
        grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W)
        return _over_background(grey, rgba[..., 3] / 255)
    return np.asarray(image.convert("L"), dtype=np.float32)  # (H, W)


def _over_background(grey, alpha):  # (H, W), (H, W) in [0, 1] -> (H, W)
    """`grey` over a background opposite to its ink: the mean of the opaque pixels says which."""
    ink_level = (grey * alpha).sum() / max(alpha.sum(), 1e-6)  # mean of the opaque pixels
    background = 0.0 if ink_level > 127.5 else 255.0
    return (grey * alpha + background * (1 - alpha)).astype(np.float32)  # (H, W)


def mnist_digit(grey):  # (H, W) in [0, 255] -> (784,) float32 in [0, 1]
    """MNIST preprocessing of a greyscale picture of one digit."""
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise ImageError(f"expected a 2-d greyscale image, got shape {grey.shape}")
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])  # the frame shows the background
    if np.median(border) > 127.5:
        grey, border = 255 - grey, 255 - border  # light background: invert, so ink is bright
    background = np.median(border)
    floor = background + 3 * np.median(np.abs(border - background))  # background plus its noise
    ink = np.clip(grey - np.float32(floor), 0, None)  # (H, W)
    if not ink.max() > 0:
        raise ImageError("no digit found (the image is blank)")
    ink = np.divide(ink, ink.max(), dtype=np.float32)  # (H, W) in [0, 1]; the strongest stroke is 1
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # (h, w): cropped to the ink
    ink = _fit(ink, BOX)  # (h', w'), the longer side BOX
    return _centre_by_mass(ink, SIDE).reshape(-1)  # (784,)


def _fit(ink, box):  # (h, w) -> (h', w') with max(h', w') = box, same aspect ratio
    h, w = ink.shape
    if max(h, w) == box:
        return ink
    from PIL import Image

    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow wants (width, height)
    resized = Image.fromarray(ink).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)  # Lanczos rings slightly past [0, 1]


def _centre_by_mass(ink, side):  # (h, w) -> (side, side)
    """Place `ink` in a side x side frame, shifted by whole pixels so its centre of mass is at side/2."""
    h, w = ink.shape
    mass = ink.sum()
    cy = (ink.sum(axis=1) @ np.arange(h)) / mass  # row of the centre of mass, inside the crop
    cx = (ink.sum(axis=0) @ np.arange(w)) / mass
    top = int(np.clip(np.round(side / 2 - cy), 0, side - h))
    left = int(np.clip(np.round(side / 2 - cx), 0, side - w))
    frame = np.zeros((side, side), dtype=np.float32)
    frame[top:top + h, left:left + w] = ink
    return frame

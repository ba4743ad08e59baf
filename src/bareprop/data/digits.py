"""Your own digit as an MNIST input: a picture of any size or colours -> (784,) in [0, 1].

The MNIST recipe: greyscale; ink bright on a dark background (inverted when the background is
light); cropped to the ink; fitted into 20x20 keeping the aspect ratio; placed in 28x28 with its
centre of mass at the centre. An MNIST test digit written out as a PNG comes back unchanged.
Pillow is imported only here, and only to read files and to resize.
"""

from pathlib import Path

import numpy as np

SIDE, BOX = 28, 20  # MNIST images are 28x28; the digit is fitted into a 20x20 box


class ImageError(ValueError):
    """An image file cannot be read, or holds no digit."""


def read_digit(path):
    """The image file at `path` as an MNIST input row (784,) float32; ImageError naming the file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except FileNotFoundError:
        raise ImageError(f"{path}: cannot read (No such file or directory)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read (PNG, JPEG, ...)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: cannot read the image ({getattr(e, 'strerror', None) or e})") from None
    try:
        return mnist_digit(_greyscale(image))
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None


def _greyscale(image):  # a Pillow image -> (H, W) float32 in [0, 255]
    """Luminance; a transparent background becomes the opposite of the ink, so the ink shows."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)  # (H, W, 4)
        alpha = rgba[..., 3:] / 255  # (H, W, 1)
        grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (H, W)
        ink_level = (grey * alpha[..., 0]).sum() / max(alpha.sum(), 1e-6)  # mean of the opaque pixels
        background = 0.0 if ink_level > 127.5 else 255.0
        return (grey * alpha[..., 0] + background * (1 - alpha[..., 0])).astype(np.float32)  # (H, W)
    return np.asarray(image.convert("L"), dtype=np.float32)  # (H, W)


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

"""Your own digit: MNIST preprocessing of pictures the tests draw, and `bareprop predict`."""

import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

import bareprop as bp
from bareprop.cli import main
from bareprop.data.digits import ImageError, _greyscale, mnist_digit, read_digit

# Strokes of a few digits, in fractions of a square canvas: (kind, (x0, y0, x1, y1)).
STROKES = {
    0: [("ellipse", (0.25, 0.1, 0.75, 0.9))],
    1: [("line", (0.5, 0.1, 0.5, 0.9))],
    2: [("arc", (0.25, 0.1, 0.75, 0.5)), ("line", (0.72, 0.38, 0.25, 0.9)), ("line", (0.25, 0.9, 0.78, 0.9))],
    4: [("line", (0.6, 0.1, 0.6, 0.9)), ("line", (0.6, 0.1, 0.2, 0.6)), ("line", (0.2, 0.6, 0.8, 0.6))],
    7: [("line", (0.25, 0.12, 0.75, 0.12)), ("line", (0.75, 0.12, 0.4, 0.9))],
}


def draw(digit, width, height, dark_ink=True):
    """A picture of `digit`: black on white, or yellow on dark blue."""
    image = Image.new("RGB", (width, height), "white" if dark_ink else (20, 30, 90))
    pen = ImageDraw.Draw(image)
    ink = "black" if dark_ink else (250, 240, 120)
    side = min(width, height)
    ox, oy = (width - side) / 2, (height - side) / 2
    stroke = max(1, round(side * 0.09))
    for kind, (x0, y0, x1, y1) in STROKES[digit]:
        box = (ox + x0 * side, oy + y0 * side, ox + x1 * side, oy + y1 * side)
        if kind == "ellipse":
            pen.ellipse(box, outline=ink, width=stroke)
        elif kind == "line":
            pen.line(box, fill=ink, width=stroke)
        else:
            pen.arc(box, 180, 40, fill=ink, width=stroke)
    return image


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    r = np.random.default_rng(0)
    net = bp.NeuralNet((784, 32, 10), rng=r)
    X, y = bp.load_mnist("train")
    bp.train(net, X, y, epochs=2, rng=r)
    path = tmp_path_factory.mktemp("model") / "model.npz"
    bp.save(net, path)
    return path


def test_mnist_test_digits_as_pngs_come_back_as_the_arrays(tmp_path, model):
    """The preprocessing leaves an MNIST digit as it is (up to the stretch of a faint one to full
    ink), so a digit saved as a PNG gets the same answer as the array it came from."""
    X, _ = bp.load_mnist("test")
    net = bp.load(model)
    X = X[:300]
    rows = []
    for i, x in enumerate(X):
        path = tmp_path / f"{i}.png"
        Image.fromarray((x * 255).round().astype(np.uint8).reshape(28, 28)).save(path)
        rows.append(read_digit(path))
    rows = np.stack(rows)  # (300, 784)
    full_ink = X.max(axis=1) == 1
    assert full_ink.sum() > 200
    np.testing.assert_array_equal(rows[full_ink], X[full_ink])
    np.testing.assert_allclose(rows, X, atol=1 / 255 + 1e-6)
    np.testing.assert_array_equal(net.predict(rows), net.predict(X))
    np.testing.assert_allclose(net.predict_proba(rows), net.predict_proba(X), atol=5e-3)


@pytest.mark.parametrize("digit", sorted(STROKES))
def test_drawn_digits_in_any_size_and_polarity(tmp_path, model, digit):
    net = bp.load(model)
    inputs = []
    for width, height in [(28, 28), (64, 64), (200, 200), (300, 120)]:
        for dark_ink in (True, False):
            path = tmp_path / f"{digit}-{width}x{height}-{dark_ink}.png"
            draw(digit, width, height, dark_ink).save(path)
            x = read_digit(path)
            assert x.shape == (784,) and x.dtype == np.float32 and x.min() >= 0 and x.max() == 1
            inputs.append(x)
    inputs = np.stack(inputs)  # (8, 784)
    np.testing.assert_array_equal(inputs[0::2], inputs[1::2])  # the two polarities give the same input
    assert list(net.predict(inputs)) == [digit] * len(inputs)


def test_the_digit_is_fitted_in_20x20_and_centred_by_mass():
    grey = np.zeros((100, 300), dtype=np.float32)
    grey[40:60, 10:290] = 255  # a wide bar, off centre
    x = mnist_digit(grey).reshape(28, 28)
    rows, cols = np.nonzero(x > 0)
    assert cols.max() - cols.min() + 1 == 20 and rows.max() - rows.min() + 1 <= 2
    mass = x.sum()
    assert abs((x.sum(axis=1) @ np.arange(28)) / mass - 14) <= 0.5
    assert abs((x.sum(axis=0) @ np.arange(28)) / mass - 14) <= 0.5


def test_transparent_background_and_jpeg(tmp_path, model):
    net = bp.load(model)
    rgba = Image.new("RGBA", (90, 90), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line((45, 9, 45, 81), fill=(0, 0, 0, 255), width=8)  # black 1 on transparent
    rgba.save(tmp_path / "one.png")
    draw(7, 120, 120).save(tmp_path / "seven.jpg", quality=85)
    assert list(net.predict(np.stack([read_digit(tmp_path / "one.png"), read_digit(tmp_path / "seven.jpg")]))) == [1, 7]


def test_blank_and_unreadable_images_name_the_file(tmp_path):
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    (tmp_path / "notes.png").write_text("not an image")
    draw(1, 50, 50).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:60])  # a truncated PNG
    for name, problem in [("blank.png", "no digit found"), ("notes.png", "not an image"),
                          ("cut.png", "cannot read the image"), ("absent.png", "No such file")]:
        with pytest.raises(ImageError) as caught:
            read_digit(tmp_path / name)
        assert str(caught.value).startswith(f"{tmp_path / name}: ") and problem in str(caught.value)


def test_predict_cli_prints_the_top_three(tmp_path, model, capsys):
    paths = []
    for digit in (0, 7):
        paths.append(tmp_path / f"{digit}.png")
        draw(digit, 150, 150, dark_ink=digit == 0).save(paths[-1])
    assert main(["predict", str(model), *map(str, paths)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for digit, path, line in zip((0, 7), paths, lines):
        top = r"(\d) \((\d\.\d{3})\)"
        match = re.fullmatch(rf"{re.escape(str(path))}: {top}  {top}  {top}", line)
        assert match, line
        classes, probs = match.group(1, 3, 5), [float(p) for p in match.group(2, 4, 6)]
        assert classes[0] == str(digit) and len(set(classes)) == 3 and probs == sorted(probs, reverse=True)
        expected = bp.load(model).predict_proba(read_digit(path)[np.newaxis])[0]
        assert probs[0] == round(float(expected.max()), 3)


def test_predict_cli_reports_each_bad_image_and_exits_2(tmp_path, model, capsys):
    draw(1, 60, 60).save(tmp_path / "one.png")
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["predict", str(model), str(tmp_path / "notes.txt"), str(tmp_path / "one.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{tmp_path / 'one.png'}: 1 (")
    assert captured.err == f"bareprop: error: {tmp_path / 'notes.txt'}: not an image Pillow can read (PNG, JPEG, ...)\n"


def test_predict_cli_with_a_bad_model_is_one_line(tmp_path, capsys):
    (tmp_path / "model.npz").write_bytes(b"PK\x03\x04 broken")
    draw(1, 60, 60).save(tmp_path / "one.png")
    assert main(["predict", str(tmp_path / "model.npz"), str(tmp_path / "one.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"{tmp_path / 'model.npz'}: truncated or damaged archive" in captured.err


# --- pictures read defensively, and deep greyscale ---------------------------------------------------

def png_header_only(path, width, height):
    """A PNG that declares width x height pixels and holds none: Pillow reads the header lazily."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_a_picture_over_4096x4096_pixels_is_refused_before_decoding(tmp_path, model, capsys):
    path = png_header_only(tmp_path / "huge.png", 5000, 5000)
    assert main(["predict", str(model), str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        f"bareprop: error: {path}: 5000x5000 pixels, more than the 16,777,216 pixels (4096x4096) bareprop reads "
        "from a picture\n")


def test_a_decompression_bomb_is_one_line(tmp_path):
    path = png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(ImageError) as caught:
        read_digit(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: more than the 16,777,216 pixels (4096x4096) bareprop reads from a picture (")
    assert "\n" not in message


def test_dev_zero_as_a_picture_is_one_line(model, capsys):
    assert main(["predict", str(model), "/dev/zero"]) == 2
    assert capsys.readouterr().err == "bareprop: error: /dev/zero: is a character device, expected a file\n"


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes are POSIX")
def test_a_fifo_as_a_picture_is_one_line_and_does_not_hang(tmp_path):
    import os

    os.mkfifo(tmp_path / "digit.png")
    with pytest.raises(ImageError, match=r"digit\.png: is a named pipe \(FIFO\), expected a file$"):
        read_digit(tmp_path / "digit.png")


def test_a_picture_file_over_64_mib_is_refused_unread(tmp_path):
    with open(tmp_path / "big.png", "wb") as f:
        f.truncate(64 * 2**20 + 1)
    with pytest.raises(ImageError) as caught:
        read_digit(tmp_path / "big.png")
    assert str(caught.value) == (f"{tmp_path / 'big.png'}: 64 MiB (67108865 bytes), more than the 64 MiB bareprop "
                                 "reads from a picture")


def test_a_16_bit_greyscale_png_reads_as_its_8_bit_picture(tmp_path):
    """Light grey ink (level 200 of 255) on white, written by Pillow as a 16-bit PNG ("I;16"): not blank,
    and the same input as the 8-bit picture, where clipping 16-bit levels to 255 would make it all white."""
    grey = np.asarray(draw(4, 80, 80).convert("L"), dtype=np.uint16)  # (80, 80) in [0, 255]
    grey = np.where(grey < 128, 200, 255).astype(np.uint16)  # light ink: 200, the background 255
    Image.fromarray(grey.astype(np.uint8)).save(tmp_path / "eight.png")
    Image.fromarray(grey * 257).save(tmp_path / "sixteen.png")  # 0..255 -> 0..65535
    with Image.open(tmp_path / "sixteen.png") as image:
        assert image.mode == "I;16"
    x16, x8 = read_digit(tmp_path / "sixteen.png"), read_digit(tmp_path / "eight.png")
    assert x16.max() == 1 and (x16 > 0.5).sum() > 40
    np.testing.assert_allclose(x16, x8, atol=1e-6)


# --- transparency: a transparent background becomes the opposite of the ink --------------------------

DARK_INK, LIGHT_INK = (20, 30, 90), (250, 240, 120)  # dark blue ink; pale yellow chalk


def luminance(rgb):
    """ITU-R 601 luma, the weights of Pillow's "L" conversion."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def coverage(digit, side=48):
    """How much of each pixel the digit's strokes cover, (side, side) in [0, 1], multiples of 1/255:
    drawn at 4x and averaged down, so the strokes' edges are fractions, as in any anti-aliased drawing."""
    big = draw(digit, 4 * side, 4 * side).convert("L")  # black on white
    return (255 - np.asarray(big.resize((side, side), Image.Resampling.BOX), dtype=np.float64)) / 255


def on_transparent(mode, c, ink):
    """`ink` drawn with alpha = coverage `c` on a fully transparent background (stored as transparent
    black, as editors do); returns the picture and the grey level of its ink."""
    alpha = Image.fromarray(np.round(c * 255).astype(np.uint8))
    drawn = c > 0
    if mode == "RGBA":
        bands = [Image.fromarray(np.where(drawn, v, 0).astype(np.uint8)) for v in ink]
        return Image.merge("RGBA", (*bands, alpha)), luminance(ink)
    if mode == "LA":
        level = round(luminance(ink))
        return Image.merge("LA", (Image.fromarray(np.where(drawn, level, 0).astype(np.uint8)), alpha)), level
    index = Image.fromarray(drawn.astype(np.uint8)).convert("P")  # "PA": palette index 1 is the ink
    picture = Image.merge("PA", (index, alpha))
    picture.putpalette([0, 0, 0, *ink])
    return picture, luminance(ink)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA"])
@pytest.mark.parametrize("ink, paper", [(DARK_INK, 255.0), (LIGHT_INK, 0.0)], ids=["dark-ink", "light-ink"])
def test_ink_on_a_transparent_background_reads_as_the_same_digit_drawn_on_paper(mode, ink, paper):
    """Dark ink on transparent reads as if drawn on white paper, light ink as if on black, anti-aliased
    edges (partly transparent pixels) included: the same MNIST input as the opaque picture."""
    c = coverage(2)
    picture, level = on_transparent(mode, c, ink)
    on_paper = level * c + paper * (1 - c)  # (48, 48): the same digit, opaque
    np.testing.assert_allclose(mnist_digit(_greyscale(picture)), mnist_digit(on_paper), rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["L", "RGB", "P", "I;16"])
@pytest.mark.parametrize("dark_ink", [True, False], ids=["dark-ink", "light-ink"])
def test_a_png_with_a_transparent_colour_reads_as_the_same_digit_drawn_on_paper(tmp_path, mode, dark_ink):
    """A PNG may name one colour transparent (tRNS) instead of storing alpha. Here the paper is stored in
    the colour a naive reader would take for the opposite (black under dark ink, white under light ink)
    and declared transparent: the picture reads as the digit drawn on paper."""
    ink, paper, key = (DARK_INK, 255, 0) if dark_ink else (LIGHT_INK, 0, 255)
    c = coverage(4)
    rgb = np.round(np.multiply.outer(c, ink) + paper * (1 - c[..., None]))  # (48, 48, 3) anti-aliased on paper
    levels = np.round(luminance(np.moveaxis(rgb, -1, 0)))  # (48, 48) its grey levels
    drawn = c > 0
    if mode == "RGB":
        stored = np.where(drawn[..., None], rgb, key).astype(np.uint8)
        Image.fromarray(stored).save(tmp_path / "t.png", transparency=(key,) * 3)
        on_paper = np.where(drawn, luminance(np.moveaxis(rgb, -1, 0)), paper)
    else:
        stored = np.where(drawn, levels, key)  # (48, 48) grey levels, the paper in the key colour
        if mode == "L":
            Image.fromarray(stored.astype(np.uint8)).save(tmp_path / "t.png", transparency=key)
        elif mode == "I;16":
            Image.fromarray((stored * 257).astype(np.uint16)).save(tmp_path / "t.png", transparency=key * 257)
        else:  # a palette of greys, index i = grey level i
            picture = Image.fromarray(stored.astype(np.uint8)).convert("P")
            picture.putpalette([v for i in range(256) for v in (i, i, i)])
            picture.save(tmp_path / "t.png", transparency=key)
        on_paper = np.where(drawn, levels, paper)
    with Image.open(tmp_path / "t.png") as image:
        assert image.mode == mode and "transparency" in image.info
    np.testing.assert_allclose(read_digit(tmp_path / "t.png"), mnist_digit(on_paper), rtol=0, atol=1e-5)


def test_colours_are_weighed_by_itu_r_601_luminance():
    """Pure red, green and blue ink weigh 0.299, 0.587 and 0.114 of white, with or without alpha, as
    Pillow's own greyscale (used for opaque pictures) weighs them."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    rgba = Image.new("RGBA", (4, 1))
    rgba.putdata([(*rgb, 255) for rgb in colours])
    np.testing.assert_allclose(_greyscale(rgba)[0], [0.299 * 255, 0.587 * 255, 0.114 * 255, 255], rtol=1e-6)
    opaque = _greyscale(rgba.convert("RGB"))[0]  # Pillow's "L": the same weights, rounded to whole levels
    np.testing.assert_allclose(_greyscale(rgba)[0], opaque, atol=0.5)


def test_a_half_transparent_edge_pixel_is_blended_over_the_background_worked_by_hand():
    """Three pixels: the ink opaque, the ink at alpha 128/255 (an anti-aliased edge), nothing (alpha 0).
    The background is chosen from the mean of the ink (weighted by alpha) and the edge blended over it."""
    def row(level):
        picture = Image.new("RGBA", (3, 1))
        picture.putdata([(level,) * 3 + (255,), (level,) * 3 + (128,), (0, 0, 0, 0)])
        return _greyscale(picture)[0]
    a = 128 / 255
    # light ink 200: its mean, 200, is above 127.5, so the background is black (0):
    #   200 * 1 = 200;   200 * a + 0 * (1 - a) = 100.39;   0
    np.testing.assert_allclose(row(200), [200, 200 * a, 0], atol=1e-3)
    # dark ink 40: its mean, 40, is at most 127.5, so the background is white (255):
    #   40;   40 * a + 255 * (1 - a) = 20.08 + 127.00 = 147.08;   255
    np.testing.assert_allclose(row(40), [40, 40 * a + 255 * (1 - a), 255], atol=1e-3)


@pytest.mark.parametrize("levels, background", [((255, 0), 255), ((128, 128), 0)],
                         ids=["mean-127.5-dark", "mean-128-light"])
def test_ink_of_mean_mid_grey_counts_as_dark_as_a_mid_grey_frame_does(levels, background):
    """Ink whose mean is exactly 127.5 is dark (it gets a white background), just above is light (black),
    the rule mnist_digit applies to the frame: above 127.5 is light."""
    picture = Image.new("RGBA", (3, 1))
    picture.putdata([(levels[0],) * 3 + (255,), (levels[1],) * 3 + (255,), (0, 0, 0, 0)])
    assert _greyscale(picture)[0, 2] == background


def test_a_barely_opaque_picture_is_judged_by_its_ink_not_by_how_opaque_it_is():
    """Two light pixels (150 and 200) at alpha 77/255, less than one opaque pixel in all: the ink is light,
    so the background is black, and the digit reads as the same pixels opaque on black."""
    picture = Image.new("RGBA", (5, 5), (0, 0, 0, 0))
    picture.putpixel((2, 1), (150, 150, 150, 77))
    picture.putpixel((2, 3), (200, 200, 200, 77))
    on_black = np.zeros((5, 5), dtype=np.float32)
    on_black[1, 2], on_black[3, 2] = 150, 200
    np.testing.assert_allclose(mnist_digit(_greyscale(picture)), mnist_digit(on_black), atol=1e-6)


def test_a_fully_transparent_picture_is_blank(tmp_path):
    Image.new("RGBA", (30, 30), (255, 255, 255, 0)).save(tmp_path / "clear.png")
    with pytest.raises(ImageError) as caught:
        read_digit(tmp_path / "clear.png")
    assert str(caught.value) == f"{tmp_path / 'clear.png'}: no digit found (the image is blank)"


# --- mnist_digit: the frame, the noise floor, thin strokes, shapes and dtypes -------------------------

def stroke(height=30, width=30, level=255.0, background=0.0):
    """A vertical bar 20 tall and 3 wide on a plain background: fits the 20x20 box without resizing."""
    grey = np.full((height, width), background, dtype=np.float32)
    grey[5:25, 10:13] = level
    return grey


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0), (5, 5, 3), (5,), ()])
def test_anything_but_a_non_empty_2d_array_is_refused_in_one_line(shape):
    with pytest.raises(ImageError) as caught:
        mnist_digit(np.zeros(shape))
    assert str(caught.value) == f"expected a 2-d greyscale image, got shape {shape}"


@pytest.mark.parametrize("transpose", [False, True], ids=["1xN", "Nx1"])
def test_a_picture_one_pixel_tall_or_wide_is_a_digit(transpose):
    """A dash 20 pixels long in a 1x50 picture (or a bar in 50x1): every pixel is on the frame."""
    grey = np.zeros((1, 50), dtype=np.float32)
    grey[0, 15:35] = 255
    x = mnist_digit(grey.T if transpose else grey).reshape(28, 28)
    expected = np.zeros((28, 28), dtype=np.float32)
    expected[14, 4:24] = 1  # centred by mass: round(14 - 0) = 14, round(14 - 9.5) = 4 (half to even)
    np.testing.assert_array_equal(x, expected.T if transpose else expected)


@pytest.mark.parametrize("transpose", [False, True], ids=["vertical", "horizontal"])
def test_a_one_pixel_stroke_stays_one_pixel_thin_when_shrunk_into_the_box(transpose):
    """A '1' drawn with a 1-pixel pen, 40 pixels long, is halved to 20 long and stays 1 pixel wide."""
    grey = np.zeros((50, 50), dtype=np.float32)
    grey[5:45, 25] = 255
    x = mnist_digit(grey.T if transpose else grey).reshape(28, 28)
    x = x.T if transpose else x
    rows, cols = np.nonzero(x)
    assert len(set(cols)) == 1 and rows.max() - rows.min() + 1 == 20


def test_the_frame_at_127_5_reads_as_dark_and_just_above_as_light():
    """A mid-grey page: a frame whose median is exactly 127.5 is dark paper (light ink is the digit),
    a frame of 128 is light paper (dark ink is the digit)."""
    rows, cols = np.indices((30, 30))
    dark_page = 127 + (rows + cols) % 2  # checkerboard 127/128: the frame's median is 127.5
    dark_page[5:25, 10:13] = 255
    light_page = stroke(level=0, background=128)
    expected = mnist_digit(stroke())
    np.testing.assert_array_equal(mnist_digit(dark_page.astype(np.float32)), expected)
    np.testing.assert_array_equal(mnist_digit(light_page), expected)


def test_a_digit_and_its_negative_give_the_same_input():
    """Dark on white or the same levels inverted, white on black: anti-aliased edges included."""
    levels = np.round(coverage(7) * 255)  # (48, 48) whole grey levels, ink bright
    np.testing.assert_array_equal(mnist_digit(255 - levels), mnist_digit(levels))


def test_background_noise_under_three_mads_is_removed_and_faint_ink_above_it_kept():
    """A noisy background (10 and 20 in a checkerboard: median 15, median absolute deviation 5) puts the
    floor at 15 + 3 * 5 = 30: a speck at 29 goes with the noise, a faint stroke at 31 is ink (31 - 30 = 1
    of the strong stroke's 255 - 30 = 225)."""
    rows, cols = np.indices((30, 30))
    grey = np.where((rows + cols) % 2, 20, 10).astype(np.float32)
    grey[5:25, 10:13] = 255  # the strong stroke
    grey[5:25, 17] = 31  # a faint stroke
    grey[15, 22] = 29  # a speck in the noise
    x = mnist_digit(grey).reshape(28, 28)
    cols_with_ink = np.nonzero(x.any(axis=0))[0]
    assert x.min() == 0 and (x > 0).sum() == 4 * 20 and cols_with_ink.max() - cols_with_ink.min() == 7
    np.testing.assert_allclose(np.sort(x[x > 0])[:20], 1 / 225, rtol=1e-6)
    np.testing.assert_array_equal(np.sort(x[x > 0])[20:], 1)


def test_a_faint_digit_one_level_above_its_background_is_stretched_to_full_ink():
    np.testing.assert_array_equal(mnist_digit(stroke(level=1)), mnist_digit(stroke()))


def test_the_input_does_not_depend_on_the_arrays_dtype():
    """float64 (values float32 cannot hold exactly), uint8 and int: the result of the float32 values."""
    rng = np.random.default_rng(0)
    grey = coverage(0) * 255 + rng.uniform(0, 1, (48, 48))  # (48, 48) float64, not exact in float32
    np.testing.assert_array_equal(mnist_digit(grey), mnist_digit(grey.astype(np.float32)))
    levels = np.round(coverage(0) * 255)
    for dtype in (np.uint8, np.int64):
        np.testing.assert_array_equal(mnist_digit(levels.astype(dtype)), mnist_digit(levels.astype(np.float32)))


def lanczos(n_in, n_out):
    """(n_out, n_in): Pillow's LANCZOS along one axis (Lanczos-3, widened by the reduction factor),
    as the draw page computes it."""
    scale = n_in / n_out
    stretch = max(scale, 1)
    weights = np.zeros((n_out, n_in))
    for j in range(n_out):
        centre = (j + 0.5) * scale
        first, end = max(int(centre - 3 * stretch + 0.5), 0), min(int(centre + 3 * stretch + 0.5), n_in)
        t = (np.arange(first, end) - centre + 0.5) / stretch
        k = np.where((-3 <= t) & (t < 3), np.sinc(t) * np.sinc(t / 3), 0)
        weights[j, first:end] = k / k.sum()
    return weights


def test_the_digit_is_shrunk_with_lanczos_as_the_draw_page_does():
    """The crop (here 43x27) is fitted into 20x20 with Pillow's Lanczos filter, which draw.html re-implements
    in JavaScript: the same numbers as a NumPy Lanczos-3, then centred by mass."""
    ink = coverage(2)  # (48, 48), bright ink on black
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] / ink.max()  # (h, w)
    h, w = crop.shape
    assert max(h, w) > 20 and h != w
    h2, w2 = (20, round(w * 20 / h)) if h > w else (round(h * 20 / w), 20)
    fitted = np.clip(lanczos(h, h2) @ crop @ lanczos(w, w2).T, 0, 1)  # (h2, w2)
    mass = fitted.sum()
    top = int(np.clip(np.round(14 - fitted.sum(axis=1) @ np.arange(h2) / mass), 0, 28 - h2))
    left = int(np.clip(np.round(14 - fitted.sum(axis=0) @ np.arange(w2) / mass), 0, 28 - w2))
    expected = np.zeros((28, 28))
    expected[top:top + h2, left:left + w2] = fitted
    np.testing.assert_allclose(mnist_digit(ink * 255).reshape(28, 28), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("end", ["top", "bottom", "left", "right"])
def test_a_digit_heavy_at_one_end_moves_only_as_far_as_the_frame_allows(end):
    """A heavy dot with a faint tail (like '!'): centring its mass would push it off the 28x28 frame, so
    it stops flush with the frame's edge, whole. The crop is 20x3: no resizing."""
    grey = np.zeros((30, 30), dtype=np.float32)
    grey[5:7, 10:13] = 255  # the dot, at the top
    grey[7:25, 11] = 40  # the tail
    turn = {"top": 0, "left": 1, "bottom": 2, "right": 3}[end]
    x = mnist_digit(np.rot90(grey, turn)).reshape(28, 28)
    x = np.rot90(x, -turn)  # back to the dot at the top
    rows, cols = np.nonzero(x)
    assert (rows.min(), rows.max()) == (8, 27)  # flush with the bottom: the dot is as high as it can be
    assert cols.max() - cols.min() == 2 and abs(cols.mean() - 14) <= 1  # 3 wide, centred across
    np.testing.assert_allclose(x.sum(), 6 + 18 * (40 / 255), rtol=1e-6)  # nothing cut off


# --- read_digit: what cannot be decoded, in one line --------------------------------------------------

def test_a_truncated_or_broken_png_is_one_line_with_pillows_reason(tmp_path):
    import struct
    import zlib

    draw(1, 50, 50).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    with pytest.raises(ImageError) as caught:
        read_digit(tmp_path / "cut.png")
    assert str(caught.value) == f"{tmp_path / 'cut.png'}: cannot read the image (image file is truncated)"

    # a chunk of garbage between two parts of the image data: Pillow raises SyntaxError while decoding
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    pixels = zlib.compress(b"".join(b"\0" + bytes(range(8 * r, 8 * r + 8)) for r in range(8)))  # 8x8 greys
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)
    broken = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels[:10])
              + b"\x00\x00\x00\x05\xff\xff\xff\xff" + pixels[10:15] + bytes(4)
              + chunk(b"IDAT", pixels[15:]) + chunk(b"IEND", b""))
    (tmp_path / "broken.png").write_bytes(broken)
    with pytest.raises(ImageError) as caught:
        read_digit(tmp_path / "broken.png")
    assert str(caught.value) == (f"{tmp_path / 'broken.png'}: cannot read the image "
                                 "(broken PNG file (chunk b'\\xff\\xff\\xff\\xff'))")


@pytest.mark.parametrize("mode", ["I", "I;16"])
def test_wide_integer_greyscale_maps_0_to_65535_onto_0_to_255_exactly(mode):
    """16-bit (and 32-bit integer) greyscale: level 0 is 0, 65535 is 255, halfway is halfway; 32-bit
    levels outside 0..65535 are clipped to its ends."""
    levels = np.array([[0, 65535, 32768, 1]], dtype=np.int32 if mode == "I" else np.uint16)
    image = Image.fromarray(levels)  # int32 -> "I", uint16 -> "I;16"
    assert image.mode == mode
    grey = _greyscale(image)
    assert grey.dtype == np.float32
    np.testing.assert_array_equal(grey[0, :2], [0.0, 255.0])
    np.testing.assert_allclose(grey[0, 2:], [32768 * 255 / 65535, 255 / 65535], rtol=1e-6)
    wide = Image.fromarray(np.array([[-5, 70000]], dtype=np.int32))  # mode "I"
    np.testing.assert_array_equal(_greyscale(wide), [[0.0, 255.0]])


def test_the_pixel_bound_at_its_boundary_and_pillows_warning_kept_quiet(tmp_path):
    """4096x4096 pixels is read; one more row is refused. A picture past Pillow's own warning size
    (about 89M pixels) is refused in one line without the warning reaching the user."""
    import warnings

    image = np.full((4096, 4096), 255, np.uint8)  # paper
    image[1000:3000, 2000:2100] = 0  # a stroke of ink: a "1"
    Image.fromarray(image).save(tmp_path / "edge.png")
    assert read_digit(tmp_path / "edge.png").shape == (784,)
    path = png_header_only(tmp_path / "tall.png", 4096, 4097)
    with pytest.raises(ImageError, match=r"4096x4097 pixels, more than the 16,777,216 pixels"):
        read_digit(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning would fail here
        with pytest.raises(ImageError, match="more than the 16,777,216 pixels"):
            read_digit(png_header_only(tmp_path / "bomb.png", 10_000, 10_000))


def test_a_missing_picture_is_one_line_with_the_os_reason(tmp_path):
    with pytest.raises(ImageError) as caught:
        read_digit(tmp_path / "nowhere.png")
    assert str(caught.value) == f"{tmp_path / 'nowhere.png'}: cannot read (No such file or directory)"

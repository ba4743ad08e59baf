"""Your own digit: MNIST preprocessing of pictures the tests draw, and `bareprop predict`."""

import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

import bareprop as bp
from bareprop.cli import main
from bareprop.data.digits import ImageError, mnist_digit, read_digit

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

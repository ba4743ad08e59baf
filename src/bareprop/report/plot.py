"""The report's charts, each drawn once as a small SVG (plain strings; no chart library, no JavaScript).

report.html inlines these SVGs; each chart's PNG is the same SVG rasterised (page.py). Pictures of
pixels (digits, weights) are PNGs embedded in the SVG, scaled up by whole pixels. Every point, cell
and picture carries a <title>: the browser shows it on hover, and the tests read the figures there.
Glossary: E epochs, L layers, K classes, N examples, P = SIDE*SIDE pixels.
"""

import base64
import math
import struct
import zlib
from html import escape

import numpy as np

SIDE = 28  # MNIST images are SIDE x SIDE
ZOOM = 3  # each image pixel drawn as ZOOM x ZOOM
FONT = 'font-family="DejaVu Sans, Verdana, sans-serif" font-size="11"'
TRAIN, TEST = "#5276A7", "#E45756"  # the post's blue for the training set; red for the test set
LAYER_COLOURS = ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#9D755D", "#E45756"]
PANEL_W, PANEL_H = 380, 220  # the plot area of one panel of lines
LEFT, TOP, BOTTOM, GAP = 58, 30, 42, 70  # margins around a panel, and between two panels


# --- numbers to positions --------------------------------------------------------------------


def nice_step(span, count):
    """The smallest of 1, 2, 5 x 10^k that cuts `span` into at most `count` steps."""
    raw = span / count if span > 0 else 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def ticks(lo, hi, step):  # the multiples of step in [lo, hi]
    return [round(k * step, 12) for k in range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)]


def _decimals(step):  # enough decimals to tell ticks `step` apart
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _finite(values):
    return [v for v in values if v is not None and math.isfinite(v)]


def _scale(lo, hi, a, b):  # the linear map [lo, hi] -> [a, b]
    return lambda v: a + (v - lo) / (hi - lo) * (b - a)


# --- SVG pieces ------------------------------------------------------------------------------


def svg(width, height, body, label):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" {FONT}>'
            f'<rect width="{width}" height="{height}" fill="white"/>{body}</svg>')


def text(x, y, words, anchor="middle", **attrs):
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(words)}</text>'


def marker(shape, x, y, colour, title, filled=True, r=3.5):
    """A point: a circle, square, diamond or triangle of radius about r, filled or hollow, with its
    figures as a tooltip."""
    fill = colour if filled else "white"
    paint = f'fill="{fill}" stroke="{colour}" stroke-width="{min(1.5, r / 2):.2f}"'
    if shape == "circle":
        mark = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.2f}" {paint}>'
    else:
        r = r * 1.3 if shape == "diamond" else r
        points = {"square": [(-r, -r), (r, -r), (r, r), (-r, r)], "diamond": [(0, -r), (r, 0), (0, r), (-r, 0)],
                  "triangle": [(0, -r), (r, r * 0.8), (-r, r * 0.8)]}[shape]
        mark = f'<polygon points="{" ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in points)}" {paint}>'
    return mark + f'<title>{escape(title)}</title></{mark[1:mark.index(" ")]}>'


def png_data_uri(pixels):  # (H, W) grey or (H, W, 3) RGB, uint8 -> a data: URI of a PNG file
    """A PNG file by hand: a header chunk, the rows (each after a 0 byte: no filter) deflated, an end."""
    height, width = pixels.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1)  # (H, 1+W*C)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2 if pixels.ndim == 3 else 0, 0, 0, 0)  # 8 bits, RGB or grey
    data = zlib.compress(rows.tobytes())
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --- lines per epoch ---------------------------------------------------------------------------


def _panel(x0, y0, epochs, series, *, title, y_title, y_from_zero):
    """One panel: a point per epoch for each series (name, values, colour, shape, filled, dashed),
    joined by a line; the y axis from 0 (or from just below the lowest value) to just above the highest."""
    values = _finite([v for _, vals, *_ in series for v in vals]) or [0.0, 1.0]
    lo, hi = (0.0 if y_from_zero else min(values)), max(values)
    step = nice_step(hi - lo or abs(hi) / 10 or 1.0, 5)  # a flat series still gets an axis around it
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    if hi <= lo:
        hi = lo + step
    x = _scale(-0.5, len(epochs) - 0.5, x0, x0 + PANEL_W)  # an epoch per slot: one epoch sits in the middle
    y = _scale(lo, hi, y0 + PANEL_H, y0)
    out = [text(x0 + PANEL_W / 2, y0 - 12, title, font_weight="bold", font_size="12")]
    for v in ticks(lo, hi, step):  # the y grid and its labels
        out.append(f'<line x1="{x0}" x2="{x0 + PANEL_W}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e4e4"/>')
        out.append(text(x0 - 6, y(v) + 4, f"{v:.{_decimals(step)}f}", anchor="end", fill="#444"))
    for i in range(0, len(epochs), max(1, int(nice_step(len(epochs) - 1, 10)))):  # at most 11 labels
        out.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y0 + PANEL_H}" y2="{y0 + PANEL_H + 4}" stroke="#888"/>')
        out.append(text(x(i), y0 + PANEL_H + 16, str(epochs[i]), fill="#444"))
    out.append(f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>')
    out.append(text(x0 + PANEL_W / 2, y0 + PANEL_H + 34, "epoch"))
    out.append(text(x0 - 44, y0 + PANEL_H / 2, y_title, transform=f"rotate(-90 {x0 - 44} {y0 + PANEL_H / 2})"))
    r = min(3.5, max(1.2, PANEL_W / len(epochs) / 3))  # a point per epoch, smaller as they crowd
    for name, vals, colour, shape, filled, dashed in series:
        points = [(i, v) for i, v in enumerate(vals) if v is not None and math.isfinite(v)]
        line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.8"{dash}/>')
        out += [marker(shape, x(i), y(v), colour, f"epoch {epochs[i]}, {name}: {y_title} {v:.4f}", filled, r)
                for i, v in points]
    return "".join(out)


def _legend(x0, y0, series):
    """A row of samples (line, point, name), one per series."""
    out = []
    for name, _, colour, shape, filled, dashed in series:
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<line x1="{x0}" x2="{x0 + 30}" y1="{y0}" y2="{y0}" stroke="{colour}" stroke-width="1.8"{dash}/>')
        out.append(marker(shape, x0 + 15, y0, colour, name, filled))
        out.append(text(x0 + 38, y0 + 4, name, anchor="start"))
        x0 += 46 + 6.5 * len(name)
    return "".join(out)


def _two_panels(epochs, left, right, legend, label):
    """Two panels side by side, each with its own y axis, under one legend."""
    x1, x2, y0 = LEFT, LEFT + PANEL_W + GAP, TOP + 24
    body = _legend(LEFT, 14, legend) + _panel(x1, y0, epochs, **left) + _panel(x2, y0, epochs, **right)
    return svg(x2 + PANEL_W + 16, y0 + PANEL_H + BOTTOM, body, label)


def history_chart(history):
    """The post's chart: loss and accuracy per epoch, each on its own panel and axis; the training set
    (the mean over the epoch's batches) solid with filled circles, the test set dashed with hollow squares."""
    sets = [("train", TRAIN, "circle", True, False)]
    if history.test_acc:
        sets.append(("test", TEST, "square", False, True))
    figures = {"train": (history.train_loss, history.train_acc), "test": (history.test_loss, history.test_acc)}
    loss = [(name, figures[name][0], *style) for name, *style in sets]
    accuracy = [(name, figures[name][1], *style) for name, *style in sets]
    legend = [(f"{name} set", [], *style) for name, *style in sets]
    return _two_panels(history.epoch, dict(series=loss, title="loss", y_title="loss", y_from_zero=True),
                       dict(series=accuracy, title="accuracy", y_title="accuracy", y_from_zero=False),
                       legend, "loss and accuracy per epoch")


def norms_chart(history, layer_names):
    """Each weight matrix's norm after each epoch, and its gradient's on the epoch's first batch."""
    shapes = ["circle", "square", "diamond", "triangle"]
    styles = [(LAYER_COLOURS[i % len(LAYER_COLOURS)], shapes[i % len(shapes)], True, False)
              for i in range(len(layer_names))]
    weights = [(name, [row[i] for row in history.weight_norm], *style)  # (E,) norms of layer i
               for i, (name, style) in enumerate(zip(layer_names, styles))]
    grads = [(name, [row[i] for row in history.grad_norm], *style) for i, (name, style) in enumerate(zip(layer_names, styles))]
    legend = [(name, [], *style) for name, style in zip(layer_names, styles)]
    return _two_panels(history.epoch, dict(series=weights, title="weights", y_title="norm", y_from_zero=True),
                       dict(series=grads, title="gradient (per example)", y_title="norm", y_from_zero=True),
                       legend, "weight and gradient norms per epoch")


# --- the confusion matrix ----------------------------------------------------------------------


def confusion_chart(confusion):  # (K, K) counts
    """A cell per (true, predicted) pair, its count written in it; shaded on a log scale, so that the
    few mistakes show beside the many right answers."""
    K, cell, x0, y0 = len(confusion), 32, 60, 20
    shade = np.log1p(confusion) / np.log1p(max(int(confusion.max()), 1))  # (K, K) in [0, 1]
    light, dark = np.array([247, 251, 255]), np.array([8, 69, 148])
    out = []
    for i in range(K):
        for j in range(K):
            r, g, b = np.round(light + shade[i, j] * (dark - light)).astype(int)
            x, y = x0 + j * cell, y0 + i * cell
            out.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({r},{g},{b})" stroke="white">'
                       f'<title>true {i}, predicted {j}: {confusion[i, j]}</title></rect>')
            out.append(text(x + cell / 2, y + cell / 2 + 4, str(confusion[i, j]), font_size="10",
                            fill="white" if shade[i, j] > 0.6 else "#333"))
        out.append(text(x0 - 8, y0 + i * cell + cell / 2 + 4, str(i), anchor="end"))
        out.append(text(x0 + i * cell + cell / 2, y0 + K * cell + 15, str(i)))
    out.append(text(x0 + K * cell / 2, y0 + K * cell + 34, "predicted class"))
    out.append(text(18, y0 + K * cell / 2, "true class", transform=f"rotate(-90 18 {y0 + K * cell / 2})"))
    return svg(x0 + K * cell + 10, y0 + K * cell + 44, "".join(out), "test set: true class against predicted class")


# --- pictures of pixels -----------------------------------------------------------------------


def _gallery(pictures, columns=8, lines=1, legend=""):
    """Pictures in a grid, each (caption lines, tooltip, (h, w[, 3]) uint8 pixels), each drawn in a box of an
    MNIST image's size (SIDE * ZOOM)."""
    size, gap, above = SIDE * ZOOM, 18, 14 * lines + 4
    out = []
    for n, (captions, tooltip, pixels) in enumerate(pictures):
        x = 10 + (n % columns) * (size + gap)
        y = 8 + (n // columns) * (size + above + gap // 2)
        out += [text(x + size / 2, y + 11 + 14 * k, words) for k, words in enumerate(captions)]
        zoom = max(1, size // max(pixels.shape[:2]))  # ZOOM for an MNIST image, more for a small filter
        big = pixels.repeat(zoom, axis=0).repeat(zoom, axis=1)  # (about SIDE*ZOOM square[, 3]): crisp pixels anywhere
        box = f'x="{x}" y="{y + above}" width="{size}" height="{size}"'
        out.append(f'<g><title>{escape(tooltip)}</title><image style="image-rendering:pixelated" {box} '
                   f'href="{png_data_uri(big)}"/><rect {box} fill="none" stroke="#ccc"/></g>')
    rows = -(-len(pictures) // columns)
    width = 10 + columns * (size + gap)
    return width, 8 + rows * (size + above + gap // 2), "".join(out) + legend


def probability(p):
    """p with enough decimals to show how far it is from 1 (two significant figures of 1 - p)."""
    if p >= 1.0:
        return "1 (to float precision)"
    return f"{p:.{min(12, max(2, 1 - math.floor(math.log10(1.0 - p))))}f}"


def mistakes_chart(X, y, probs, count=24):  # (N, P) in [0, 1], (N,), (N, K)
    """The `count` misclassified images with the highest probability on their (wrong) answer."""
    predicted = probs.argmax(axis=1)  # (N,)
    wrong = np.nonzero(predicted != y)[0]
    worst = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:count]
    ink = 255 - np.round(np.asarray(X[worst], dtype=np.float64) * 255).astype(np.uint8)  # (count, P): dark ink on white
    pictures = []
    for n, pixels in zip(worst, ink):
        p = probability(float(probs[n, predicted[n]]))
        pictures.append(([f"#{n}: {y[n]} \u2192 {predicted[n]}", f"p = {p}"],
                         f"test image #{n}: a {y[n]}, taken for a {predicted[n]} with probability {p}",
                         pixels.reshape(SIDE, SIDE)))
    width, height, body = _gallery(pictures, lines=2)
    return svg(width, height, body, f"the {len(worst)} most confident mistakes on the test set")


def diverging(t):  # (...) in [-1, 1] -> (..., 3) uint8
    """Blue at -1, near-white at 0, red at +1, linearly in between."""
    blue, white, red = np.array([33, 102, 172]), np.array([247, 247, 247]), np.array([178, 24, 43])
    t = np.asarray(t, dtype=np.float64)[..., None]
    return np.round(white + np.abs(t) * (np.where(t < 0, blue, red) - white)).astype(np.uint8)


def weights_chart(W, max_units=64, picture=None, unit="unit"):  # (P+1, H): the first layer's weights, bias row last
    """The weights into each hidden unit as the image they respond to (picture(w): (P,) -> (h, w); by
    default the SIDE x SIDE image of a Linear on MNIST's pixels), red for positive, blue for negative,
    on one scale for all units."""
    picture = picture or (lambda w: w.reshape(SIDE, SIDE))
    units = W[:-1, :max_units].T  # (H', P): the input weights of each hidden unit
    bound = float(np.abs(units).max()) or 1.0
    pictures = [([f"{unit} {i}"], f"{unit} {i}: weights from {w.min():.4f} to {w.max():.4f}",
                 diverging(picture(w) / bound)) for i, w in enumerate(units)]
    columns = 8
    width, height, body = _gallery(pictures, columns)
    bar = diverging(np.linspace(1, -1, 100)).reshape(100, 1, 3)  # (100, 1, 3): the colour scale, top to bottom
    x = width + 4
    legend = (text(x + 8, 20, "weight") + f'<image x="{x}" y="28" width="14" height="150" preserveAspectRatio="none" '
              f'href="{png_data_uri(bar)}"/>' + text(x + 20, 36, f"+{bound:.3f}", anchor="start") +
              text(x + 20, 107, "0", anchor="start") + text(x + 20, 182, f"\u2212{bound:.3f}", anchor="start"))
    return svg(width + 80, max(height, 190), body + legend, f"first-layer weights of {len(units)} {unit}s")

"""Photo-like synthetic images, reproducible from a seed, for tests and benchmarks.

Nothing is downloaded: each image is a sky/ground scene with a wavy horizon, a few overlapping
shapes and colour blobs with soft edges, multi-octave texture and sensor noise, drawn from a
random palette. Every geometric parameter is in relative coordinates, so the same seed gives the
same scene at 640x480 or 1920x1080. `variants` makes the near-duplicate copies that retrieval must
match back to their original.
"""

from __future__ import annotations

import colorsys
import io
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

ImageFormat = Literal["JPEG", "PNG"]

VARIANT_NAMES = ("resized", "cropped", "recompressed", "brightened", "flipped")
_SMOOTH_SIDE = 400


def photo(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    """A photo-like RGB image of the given size, the same for the same seed."""
    rng = np.random.default_rng(seed)
    # The background and blobs are smooth: render them small and upscale, which is much faster.
    scale = min(1.0, _SMOOTH_SIDE / max(width, height))
    small_w, small_h = max(2, round(width * scale)), max(2, round(height * scale))
    xs = np.linspace(0.0, 1.0, small_w, dtype=np.float32)[None, :]
    ys = np.linspace(0.0, 1.0, small_h, dtype=np.float32)[:, None]
    canvas = _add_blobs(rng, _background(rng, xs, ys), xs, ys)
    canvas = _resize_float(canvas, width, height)
    canvas = _add_shapes(rng, canvas, width, height)
    canvas *= _texture(rng, width, height, amplitude=rng.uniform(0.06, 0.18))[..., None]
    canvas += rng.normal(0.0, rng.uniform(0.002, 0.01), canvas.shape).astype(np.float32)
    pixels = np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def encode(image: Image.Image, fmt: ImageFormat = "JPEG", quality: int = 90) -> bytes:
    """Encode an image as JPEG (at `quality`) or PNG bytes."""
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def photo_bytes(
    seed: int, width: int = 640, height: int = 480, fmt: ImageFormat = "JPEG", quality: int = 90
) -> bytes:
    """`photo(seed, width, height)` encoded as JPEG or PNG bytes."""
    return encode(photo(seed, width, height), fmt, quality)


def variants(image: Image.Image, fmt: ImageFormat = "JPEG", quality: int = 90) -> dict[str, bytes]:
    """Near-duplicate copies of `image`, encoded, keyed by the names in `VARIANT_NAMES`.

    resized: half size; cropped: 90% of each side, off-centre (about 10% cut);
    recompressed: JPEG at quality 60; brightened: +20% brightness; flipped: mirrored left-right.
    """
    width, height = image.size
    crop_box = (
        round(0.06 * width),
        round(0.04 * height),
        round(0.96 * width),
        round(0.94 * height),
    )
    return {
        "resized": encode(
            image.resize((width // 2, height // 2), Image.Resampling.LANCZOS), fmt, quality
        ),
        "cropped": encode(image.crop(crop_box), fmt, quality),
        "recompressed": encode(image, "JPEG", 60),
        "brightened": encode(ImageEnhance.Brightness(image).enhance(1.2), fmt, quality),
        "flipped": encode(ImageOps.mirror(image), fmt, quality),
    }


def _colour(
    rng: np.random.Generator, hue: float, sat: tuple[float, float], val: tuple[float, float]
) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(*sat), rng.uniform(*val))
    return np.array(rgb, dtype=np.float32)


def _resize_float(canvas: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of an (h, w, 3) float32 array, one channel at a time (PIL mode "F")."""
    if canvas.shape[:2] == (height, width):
        return canvas
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(canvas[..., c]), "F").resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
        for c in range(3)
    ]
    return np.stack(channels, axis=-1)


def _smooth_noise(
    rng: np.random.Generator, grid: tuple[int, int], width: int, height: int
) -> np.ndarray:
    """Value noise: a small random grid upsampled bicubically to the image size, in about [0, 1]."""
    small = Image.fromarray(rng.random(grid[::-1], dtype=np.float32), "F")
    return np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def _texture(rng: np.random.Generator, width: int, height: int, amplitude: float) -> np.ndarray:
    """A multiplicative texture field around 1.0 from three octaves of value noise."""
    field = np.zeros((height, width), dtype=np.float32)
    for cells, weight in ((6, 0.4), (24, 0.25), (96, 0.2), (256, 0.15)):
        grid = (cells, max(2, round(cells * height / width)))
        field += weight * (_smooth_noise(rng, grid, width, height) - 0.5)
    return 1.0 + 2.0 * amplitude * field


def _background(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sky gradient over ground gradient, split by a soft wavy horizon."""
    hue = rng.random()
    sky_top = _colour(rng, hue, (0.2, 0.9), (0.4, 1.0))
    sky_low = _colour(rng, hue + rng.uniform(-0.15, 0.15), (0.05, 0.6), (0.6, 1.0))
    ground_hue = hue + rng.choice([0.5, 0.33, -0.33, 0.1]) + rng.uniform(-0.05, 0.05)
    ground_near = _colour(rng, ground_hue, (0.3, 1.0), (0.1, 0.6))
    ground_far = _colour(rng, ground_hue + rng.uniform(-0.1, 0.1), (0.2, 0.9), (0.3, 0.9))

    level = rng.uniform(0.3, 0.75)
    wave = sum(
        rng.uniform(0.0, 0.08 / k)
        * np.sin(2 * np.pi * (k * rng.uniform(0.5, 2.0) * xs + rng.random()))
        for k in (1, 2, 4)
    )
    horizon = level + wave
    sky_t = np.clip(ys / np.maximum(horizon, 1e-3), 0, 1)[..., None]
    sky = sky_top * (1 - sky_t) + sky_low * sky_t
    sky += rng.uniform(-0.15, 0.15) * (xs[..., None] - 0.5)
    ground_t = np.clip((ys - horizon) / np.maximum(1 - horizon, 1e-3), 0, 1)[..., None]
    ground = ground_far * (1 - ground_t) + ground_near * ground_t
    edge = 0.5 + 0.5 * np.tanh((ys - horizon) / rng.uniform(0.006, 0.06))
    mix = edge[..., None].astype(np.float32)
    return (sky * (1 - mix) + ground * mix).astype(np.float32)


def _add_blobs(
    rng: np.random.Generator, canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray
) -> np.ndarray:
    """Soft Gaussian colour blobs (clouds, sun glow, foliage)."""
    aspect = xs.shape[1] / ys.shape[0]
    for _ in range(rng.integers(2, 6)):
        cx, cy = rng.uniform(0, 1, 2)
        sx = rng.uniform(0.04, 0.2)
        sy = sx * aspect * rng.uniform(0.5, 1.5)
        alpha = rng.uniform(0.3, 0.8) * np.exp(-(((ys - cy) / sy) ** 2) / 2)
        alpha = alpha * np.exp(-(((xs - cx) / sx) ** 2) / 2)
        colour = _colour(rng, rng.random(), (0.0, 1.0), (0.3, 1.0))
        canvas += alpha[..., None] * (colour - canvas)
    return canvas


def _add_shapes(
    rng: np.random.Generator, canvas: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Overlapping ellipses, quadrilaterals and polygons with soft edges and shading, some striped
    (fences, windows, fabric); then a few thin strokes (poles, branches, wires)."""
    diagonal = float(np.hypot(width, height))
    for _ in range(rng.integers(4, 9)):
        cx, cy = rng.uniform(0.05, 0.95) * width, rng.uniform(0.1, 0.95) * height
        rx, ry = rng.uniform(0.04, 0.22) * width, rng.uniform(0.04, 0.25) * height
        blur = rng.uniform(0.001, 0.012) * diagonal
        # Draw and blur only the shape's neighbourhood: much cheaper on large images.
        margin = 3 * blur + 2
        x0, y0 = max(int(cx - rx - margin), 0), max(int(cy - ry - margin), 0)
        x1, y1 = min(int(cx + rx + margin) + 1, width), min(int(cy + ry + margin) + 1, height)
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        draw = ImageDraw.Draw(mask)
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse((cx - rx - x0, cy - ry - y0, cx + rx - x0, cy + ry - y0), fill=255)
        else:
            start = rng.uniform(0, 2 * np.pi)
            if kind == 1:
                angles = start + np.arange(4) * np.pi / 2 + np.array([0.4, -0.4, 0.4, -0.4])
            else:
                angles = start + np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))
            points = [(cx - x0 + rx * np.cos(a), cy - y0 + ry * np.sin(a)) for a in angles]
            draw.polygon(points, fill=255)
        alpha = np.asarray(mask.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32)
        alpha *= rng.uniform(0.55, 1.0) / 255.0
        colour = _colour(rng, rng.random(), (0.2, 1.0), (0.15, 1.0))
        rows = np.arange(y0, y1, dtype=np.float32)
        shading = 1.15 - 0.35 * np.clip((rows - (cy - ry)) / (2 * ry), 0, 1)
        layer = colour * shading[:, None, None]
        if rng.random() < 0.4:
            layer = layer * _stripes(rng, x0, x1, y0, y1, diagonal)[..., None]
        region = canvas[y0:y1, x0:x1]
        region += alpha[..., None] * (np.clip(layer, 0, 1) - region)
    return _add_strokes(rng, canvas, width, height, diagonal)


def _stripes(
    rng: np.random.Generator, x0: int, x1: int, y0: int, y1: int, diagonal: float
) -> np.ndarray:
    """A soft stripe pattern around 1.0 over the region, at a random angle and period."""
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.01, 0.04) * diagonal
    contrast = rng.uniform(0.15, 0.35)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) * (2 * np.pi / period)
    return (1.0 + contrast * np.tanh(3 * np.sin(phase))).astype(np.float32)


def _add_strokes(
    rng: np.random.Generator, canvas: np.ndarray, width: int, height: int, diagonal: float
) -> np.ndarray:
    count = int(rng.integers(0, 4))
    if count == 0:
        return canvas
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(count):
        start = rng.uniform(0, 1, 2) * (width, height)
        end = start + rng.uniform(-0.4, 0.4, 2) * (width, height)
        line_width = max(1, round(rng.uniform(0.002, 0.008) * diagonal))
        draw.line([tuple(start), tuple(end)], fill=255, width=line_width)
    alpha = np.asarray(mask.filter(ImageFilter.GaussianBlur(0.001 * diagonal)), np.float32) / 255
    colour = _colour(rng, rng.random(), (0.0, 0.6), (0.05, 0.5))
    canvas += alpha[..., None] * (colour - canvas)
    return canvas

"""Keypad images made of the real sample's own pixels, in any key order, for decoder tests.

The real `full.jpg` (2013, MIT licence, tests/fixtures/card-keypad/) shows
2 7 5 / 8 3 0 / 6 9 1 / 4 清除 关闭. Moving its 23 x 23 grey key faces to other
keys and saving the result again (JPEG or PNG) gives keypads that look like the
real one, with the real anti-aliasing, in orders the sample does not show.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "card-keypad"
SAMPLE = SAMPLE_DIR / "full.jpg"
SAMPLE_KEYS = ("2", "7", "5", "8", "3", "0", "6", "9", "1", "4", "清除", "关闭")
# Which 2013 template file shows which key (from the 2013 code's hash table).
TEMPLATE_FILES = {
    "00.png": "7",
    "01.png": "1",
    "02.png": "4",
    "10.png": "2",
    "11.png": "6",
    "12.png": "8",
    "20.png": "3",
    "21.png": "5",
    "22.png": "9",
    "30.png": "0",
    "31.png": "清除",
    "32.png": "关闭",
}
FACE = 23


def face_box(index: int) -> tuple[int, int, int, int]:
    """The reference crop box of key index (reading order)."""
    row, column = divmod(index, 3)
    left, top = 10 + 36 * column, 36 + 36 * row
    return left, top, left + FACE, top + FACE


def sample() -> Image.Image:
    """The real keypad, greyscale."""
    with Image.open(SAMPLE) as image:
        return image.convert("L")


def encode(image: Image.Image, fmt: str = "JPEG", quality: int = 75) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=quality)
    else:
        image.save(out, fmt)
    return out.getvalue()


def arrange(keys: Sequence[str | None]) -> Image.Image:
    """The sample with key i showing keys[i] (a label of SAMPLE_KEYS, or None for blank)."""
    base = sample()
    faces = {label: base.crop(face_box(i)) for i, label in enumerate(SAMPLE_KEYS)}
    blank = Image.new("L", (FACE, FACE), 255)
    out = base.copy()
    for index, label in enumerate(keys):
        out.paste(blank if label is None else faces[label], face_box(index)[:2])
    return out


def shuffled_keys(rng: random.Random) -> list[str]:
    """A keypad order as the card center draws it: shuffled digits, then 清除 and 关闭."""
    digits = [str(d) for d in range(10)]
    rng.shuffle(digits)
    return [*digits, "清除", "关闭"]


def _grey(image: Image.Image) -> list[int]:
    """The grey values of an L image, row-major."""
    return list(image.tobytes())


def add_noise(image: Image.Image, rng: random.Random, sigma: float) -> Image.Image:
    """A copy with Gaussian noise of this standard deviation on every pixel."""
    noisy = image.copy()
    noisy.putdata([max(0, min(255, round(v + rng.gauss(0.0, sigma)))) for v in _grey(image)])
    return noisy


def speckle(image: Image.Image, rng: random.Random, share: float) -> Image.Image:
    """A copy with this share of pixels set to black or white at random."""
    noisy = image.copy()
    noisy.putdata([rng.choice((0, 255)) if rng.random() < share else v for v in _grey(image)])
    return noisy

"""The login captcha (ValidateCode.aspx), drawn like the real sample.

Evidence (the 2013 sample, docs/academic-office-protocol.md): a 46 x 20 RGBA
PNG, background (211, 211, 211), four red characters (249, 31, 31, with
lighter anti-aliased pixels) on their baseline at row 15, grey lines
(105, 105, 105) drawn over them. The characters are 2013's glyph templates
(assets/captcha-glyphs/, cut from real captchas; MIT licence beside them), so
they are the real letter shapes; how the real server picks positions and
lines is a guess.
"""

from __future__ import annotations

import functools
import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

GLYPHS = Path(__file__).resolve().parent / "assets" / "captcha-glyphs"
SIZE = (46, 20)
BACKGROUND = (211, 211, 211, 255)
INK = (249, 31, 31, 255)
# Anti-aliased edge colours seen in the sample (some count as ink, some not).
EDGES = ((241, 67, 67, 255), (232, 110, 110, 255), (215, 190, 190, 255), (227, 135, 135, 255))
LINE = (105, 105, 105, 255)
CHARACTERS = 4


@functools.cache
def templates() -> dict[str, tuple[tuple[tuple[int, int], ...], ...]]:
    """Character -> its templates, each the (x, y) of its ink pixels; widths below."""
    found: dict[str, list[tuple[tuple[int, int], ...]]] = {}
    for path in sorted(GLYPHS.glob("*.png")):
        with Image.open(path) as image:
            grey = image.convert("L")
        width, height = grey.size
        data = grey.tobytes()
        ink = tuple(
            (x, y) for y in range(height) for x in range(width) if data[y * width + x] > 127
        )
        found.setdefault(path.stem[0], []).append(ink)
    return {char: tuple(inks) for char, inks in found.items()}


def alphabet() -> str:
    """The characters a captcha is made of (evidence: digits 2-9, letters without I J O i j l o)."""
    return "".join(sorted(templates()))


def _width(ink: tuple[tuple[int, int], ...]) -> int:
    return max(x for x, _ in ink) + 1


def render_captcha(rng: random.Random) -> tuple[bytes, str]:
    """A captcha PNG and its text."""
    chars = alphabet()
    while True:
        text = "".join(rng.choice(chars) for _ in range(CHARACTERS))
        shapes = [rng.choice(templates()[c]) for c in text]
        widths = [_width(s) for s in shapes]
        # Characters 1 to 3 pixels apart, 2 or more from the edges.
        room = SIZE[0] - 4 - sum(widths) - (CHARACTERS - 1)
        if room >= 0:
            break
    image = Image.new("RGBA", SIZE, BACKGROUND)
    pixels = image.load()
    assert pixels is not None
    gaps = [1 + rng.randint(0, min(2, room)) for _ in range(CHARACTERS - 1)]
    x = 2 + rng.randint(0, max(0, room - sum(g - 1 for g in gaps)))
    for index, shape in enumerate(shapes):
        for dx, y in shape:
            pixels[x + dx, y] = INK if rng.random() > 0.08 else rng.choice(EDGES[:2])
        # A few anti-aliased pixels beside the strokes, as in the sample.
        for _ in range(rng.randint(1, 3)):
            dx, y = rng.choice(shape)
            side = x + dx + rng.choice((-1, 1))
            if 0 <= side < SIZE[0] and pixels[side, y] == BACKGROUND:
                pixels[side, y] = rng.choice(EDGES[2:])
        x += widths[index] + (gaps[index] if index < len(gaps) else 0)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 2)):
        start = (rng.randint(0, SIZE[0] // 2), rng.randint(4, 19))
        end = (rng.randint(SIZE[0] // 2, SIZE[0] - 1), rng.randint(4, 19))
        draw.line([start, end], fill=LINE, width=1)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue(), text

"""The password keypad and captcha images, drawn with Pillow."""

import io
import random

from PIL import Image, ImageDraw

# The protocol's 5 x 7 digit glyphs, "#" = ink.
GLYPHS: dict[int, tuple[str, ...]] = {
    0: (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    1: ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    2: (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    3: ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    4: ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    5: ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    6: ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    7: ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    8: (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    9: (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
}

KEYPAD_SIZE = (66, 104)
CELL_W = 22
CELL_H = 26
# Noise pixels sprinkled on the keypad background (out of 6,864 pixels).
_NOISE_PIXELS = 300


def _glyph(
    draw: ImageDraw.ImageDraw, digit: int, x: int, y: int, ink: tuple[int, int, int]
) -> None:
    """Draw one digit glyph with each glyph pixel as a 2 x 2 block at (x, y)."""
    for row, line in enumerate(GLYPHS[digit]):
        for col, char in enumerate(line):
            if char == "#":
                px, py = x + 2 * col, y + 2 * row
                draw.rectangle((px, py, px + 1, py + 1), fill=ink)


def _png(img: Image.Image) -> bytes:
    """Encode an image as PNG (fast compression: these are tiny and per request)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A light background (channels 200..255) with grey noise (150..199)."""
    base = tuple(rng.randint(225, 255) for _ in range(3))
    img = Image.new("RGB", size, (base[0], base[1], base[2]))
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(_NOISE_PIXELS * w * h // (66 * 104)):
        if rng.random() < 0.5:
            grey = rng.randint(150, 199)
            colour = (grey, grey, grey)
        else:
            colour = (rng.randint(200, 255), rng.randint(200, 255), rng.randint(200, 255))
        draw.point((rng.randrange(w), rng.randrange(h)), fill=colour)
    return img


def render_keypad(rng: random.Random) -> tuple[bytes, list[int]]:
    """A freshly shuffled keypad PNG and the digit shown in each of cells 0..9."""
    cells = list(range(10))
    rng.shuffle(cells)
    img = _background(rng, KEYPAD_SIZE)
    draw = ImageDraw.Draw(img)
    for i, digit in enumerate(cells):
        x0, y0 = CELL_W * (i % 3), CELL_H * (i // 3)
        dx, dy = rng.randint(-2, 2), rng.randint(-2, 2)
        ink = (rng.randint(0, 90), rng.randint(0, 90), rng.randint(0, 90))
        _glyph(draw, digit, x0 + 6 + dx, y0 + 6 + dy, ink)
    return _png(img), cells


def render_captcha(rng: random.Random) -> tuple[bytes, str]:
    """A captcha PNG of 4 random digits, and those digits."""
    text = "".join(str(rng.randrange(10)) for _ in range(4))
    img = _background(rng, (60, 22))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        colour = (rng.randint(100, 200), rng.randint(100, 200), rng.randint(100, 200))
        draw.line(
            (rng.randrange(60), rng.randrange(22), rng.randrange(60), rng.randrange(22)),
            fill=colour,
        )
    for i, char in enumerate(text):
        ink = (rng.randint(0, 120), rng.randint(0, 120), rng.randint(0, 120))
        _glyph(draw, int(char), 3 + 14 * i + rng.randint(-1, 1), 4 + rng.randint(-2, 2), ink)
    return _png(img), text

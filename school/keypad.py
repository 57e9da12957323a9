"""Read the card center's shuffled password keypad and map passwords onto it."""

from __future__ import annotations

import functools
import io
import itertools
import re
from collections.abc import Sequence

from PIL import Image, UnidentifiedImageError

from school.errors import SchoolPageError

KEYPAD_SIZE = (66, 104)
CELL_W, CELL_H = 22, 26
GLYPH_COLS, GLYPH_ROWS = 5, 7
SCALE = 2
INK_BELOW = 128
# The closest two glyphs differ in 6 of 35 pixels (see test_keypad), so with a
# tolerance of 2 no sample can be within tolerance of two different digits.
MAX_MISMATCH = 2

# Our own copy of the protocol doc's 5 x 7 glyphs ("#" = ink), digits 0..9.
_GLYPH_ROWS_TEXT = """
.###.   ..#..   .###.   #####   ...#.   #####   ..##.   #####   .###.   .###.
#...#   .##..   #...#   ...#.   ..##.   #....   .#...   ....#   #...#   #...#
#..##   ..#..   ....#   ..#..   .#.#.   ####.   #....   ...#.   #...#   #...#
#.#.#   ..#..   ...#.   ...#.   #..#.   ....#   ####.   ..#..   .###.   .####
##..#   ..#..   ..#..   ....#   #####   ....#   #...#   .#...   #...#   ....#
#...#   ..#..   .#...   #...#   ...#.   #...#   #...#   .#...   #...#   ...#.
.###.   .###.   #####   .###.   ...#.   .###.   .###.   .#...   .###.   .##..
"""

Bitmap = tuple[bool, ...]  # GLYPH_ROWS x GLYPH_COLS, row-major


@functools.cache
def glyph_bitmaps() -> tuple[Bitmap, ...]:
    """The ten digit glyphs as row-major 5 x 7 bitmaps."""
    rows = [line.split() for line in _GLYPH_ROWS_TEXT.strip().splitlines()]
    return tuple(tuple(ch == "#" for row in rows for ch in row[digit]) for digit in range(10))


def _hamming(a: Bitmap, b: Bitmap) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


def _read_cell(
    ink: Sequence[bool], width: int, left: int, top: int, glyphs: Sequence[Bitmap]
) -> int:
    """The digit drawn in the cell whose top-left pixel is (left, top)."""
    xs: list[int] = []
    ys: list[int] = []
    for y in range(top, top + CELL_H):
        for x in range(left, left + CELL_W):
            if ink[y * width + x]:
                xs.append(x)
                ys.append(y)
    if not xs:
        raise SchoolPageError(f"keypad cell at ({left},{top}) is blank")
    x0, x1, y0, y1 = min(xs), max(xs) + 1, min(ys), max(ys) + 1
    box_w, box_h = x1 - x0, y1 - y0
    full_w, full_h = GLYPH_COLS * SCALE, GLYPH_ROWS * SCALE
    if box_w > full_w or box_h > full_h or box_w % SCALE or box_h % SCALE:
        raise SchoolPageError(f"keypad cell at ({left},{top}) has a {box_w}x{box_h} ink box")
    # The doc says the box is 10 x 14, but the glyph "1" leaves its outer
    # columns empty (6 x 14): try every block-aligned window that holds the box.
    best: list[tuple[int, int]] = []  # (mismatch, digit)
    for sx, sy in itertools.product(
        range(0, full_w - box_w + 1, SCALE), range(0, full_h - box_h + 1, SCALE)
    ):
        wx, wy = x0 - sx, y0 - sy
        if wx < left or wy < top or wx + full_w > left + CELL_W or wy + full_h > top + CELL_H:
            continue
        sample = tuple(
            sum(
                ink[(wy + r * SCALE + j) * width + wx + c * SCALE + i]
                for i in range(SCALE)
                for j in range(SCALE)
            )
            * 2
            >= SCALE * SCALE
            for r in range(GLYPH_ROWS)
            for c in range(GLYPH_COLS)
        )
        best.extend((_hamming(sample, g), d) for d, g in enumerate(glyphs))
    best.sort()
    if not best or best[0][0] > MAX_MISMATCH:
        raise SchoolPageError(f"keypad cell at ({left},{top}) matches no digit")
    if len(best) > 1 and best[1][0] == best[0][0] and best[1][1] != best[0][1]:
        raise SchoolPageError(f"keypad cell at ({left},{top}) is ambiguous")
    return best[0][1]


def decode_keypad(png: bytes) -> tuple[int, ...]:
    """The digit shown in each keypad cell 0..9; SchoolPageError if unreadable."""
    try:
        with Image.open(io.BytesIO(png)) as image:
            # Check the size before decoding pixels so a huge image costs nothing.
            if image.size != KEYPAD_SIZE:
                raise SchoolPageError(f"keypad image is {image.size}, expected {KEYPAD_SIZE}")
            grey = image.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SchoolPageError(f"keypad image unreadable: {type(exc).__name__}") from exc
    width = grey.width
    ink = [value < INK_BELOW for value in grey.tobytes()]
    glyphs = glyph_bitmaps()
    cells = tuple(
        _read_cell(ink, width, CELL_W * (i % 3), CELL_H * (i // 3), glyphs) for i in range(10)
    )
    if sorted(cells) != list(range(10)):
        raise SchoolPageError("keypad does not show each digit exactly once")
    return cells


_DIGITS = re.compile(r"[0-9]+")


def map_password(password: str, cells: Sequence[int]) -> str:
    """The password with each digit replaced by the index of the cell that shows it."""
    if not _DIGITS.fullmatch(password):
        # Never echo the password itself.
        raise ValueError("the card password must be ASCII digits")
    if sorted(cells) != list(range(10)):
        raise ValueError("keypad cells must show each digit 0..9 exactly once")
    position = {digit: index for index, digit in enumerate(cells)}
    return "".join(str(position[int(ch)]) for ch in password)

"""Read the card center's shuffled password keypad and map passwords onto it.

The real keypad (evidence: the 2013 sample `full.jpg` and the 2013 decoder,
both in tests/fixtures/card-keypad/; the same geometry in a 2015 client of
another school's card center) is a 117 x 180 greyscale JPEG: a title bar, then
4 x 3 keys on a 36 px pitch. Key n (reading order, 0..11) is cut at the box
(10 + 36 m, 36 + 36 r, 33 + 36 m, 59 + 36 r) with r, m = divmod(n, 3), and
thresholded at 118 (below = ink). Ten keys show the digits in a shuffled
order, two show 清除 and 关闭 (cells 10 and 11 in every sample seen, which we
do not rely on).

Each crop is matched to the nearest of the twelve known faces
(systems/card/keypad_glyphs.py) by the number of differing pixels, allowing a shift
of one pixel, instead of the 2013 exact MD5 match that any re-encoding breaks.
A key is read only when its nearest face is near enough and clearly nearer
than the runner-up; the ten digits must each be read exactly once, or the
keypad is unreadable (SchoolPageError): a guess would send a wrong password,
and wrong passwords count towards the card center's lockout.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from school.errors import SchoolPageError
from systems.card.keypad_glyphs import CLEAR, CLOSE, FACE_SIZE, FACES

KEYPAD_SIZE = (117, 180)
THRESHOLD = 118
ROWS, COLUMNS = 4, 3
KEYS = ROWS * COLUMNS
FIRST_X, FIRST_Y, PITCH = 10, 36, 36
DIGITS = tuple(str(d) for d in range(10))
# The nearest faces differ in 25 of 529 pixels (2 vs 7, 5 vs 6; see test_keypad).
# A crop is read as a face only if it differs from it in at most MAX_DISTANCE
# pixels and from every other face in at least MIN_MARGIN more: noise that
# flips pixels moves a crop away from all faces alike, so the margin survives
# it, while a crop between two faces (or a blank key) has no margin. Measured:
# 8 % of pixels speckled puts the real faces 14-24 pixels from themselves,
# 12 % puts them 19-40 away; a filled box is 71 from 清除, the nearest face.
MAX_DISTANCE = 45
MIN_MARGIN = 8
# Shifts tried for every face, in pixels: a re-rendered or re-scaled image may
# move the ink by one pixel.
SHIFTS = (-1, 0, 1)

__all__ = ["CLEAR", "CLOSE", "Keypad", "decode_keypad", "map_password"]


@dataclass(frozen=True, slots=True)
class Keypad:
    """What each key shows: "0".."9", CLEAR, CLOSE, or "" for a key read as none of them."""

    keys: tuple[str, ...]

    def cell_of(self, digit: int) -> int:
        """The index (0..11, reading order) of the key showing digit."""
        return self.keys.index(str(digit))

    def rows(self) -> list[list[str]]:
        """The keys as 4 rows of 3, as the image shows them."""
        return [list(self.keys[i : i + COLUMNS]) for i in range(0, KEYS, COLUMNS)]


def _bits(rows: Sequence[str], dx: int = 0, dy: int = 0) -> int:
    """A face ("#" = ink) shifted by (dx, dy) as an int, one bit per pixel, row-major."""
    out = []
    for y in range(FACE_SIZE):
        for x in range(FACE_SIZE):
            sy, sx = y - dy, x - dx
            inside = 0 <= sy < FACE_SIZE and 0 <= sx < FACE_SIZE
            out.append("1" if inside and rows[sy][sx] == "#" else "0")
    return int("".join(out), 2)


@functools.cache
def _faces() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Every face with its shifted variants, as bit sets."""
    return tuple(
        (label, tuple(_bits(rows, dx, dy) for dx in SHIFTS for dy in SHIFTS))
        for label, rows in FACES.items()
    )


@functools.cache
def _ink_table(threshold: int) -> bytes:
    """bytes.translate table: grey values below threshold become "1", the rest "0"."""
    return bytes(ord("1") if value < threshold else ord("0") for value in range(256))


def prepare() -> None:
    """Build the face tables now (the server does it once, before forking its workers)."""
    _faces()
    _ink_table(THRESHOLD)


def _crop_bits(grey: Image.Image, index: int, threshold: int) -> int:
    row, column = divmod(index, COLUMNS)
    left, top = FIRST_X + PITCH * column, FIRST_Y + PITCH * row
    crop = grey.crop((left, top, left + FACE_SIZE, top + FACE_SIZE))
    return int(crop.tobytes().translate(_ink_table(threshold)), 2)


def _read_key(bits: int) -> str:
    """The face this crop shows, or "" if no face is near enough and clearly nearest."""
    scored = sorted(
        (min((bits ^ variant).bit_count() for variant in variants), label)
        for label, variants in _faces()
    )
    (best, label), (runner_up, _) = scored[0], scored[1]
    if best <= MAX_DISTANCE and runner_up - best >= MIN_MARGIN:
        return label
    return ""


def _otsu(grey: Image.Image) -> int:
    """The threshold that best splits the image's grey levels into two classes (Otsu)."""
    histogram = grey.histogram()
    total = sum(histogram)
    weighted = sum(value * count for value, count in enumerate(histogram))
    below = below_weighted = 0
    best, chosen = -1.0, THRESHOLD
    for value, count in enumerate(histogram):
        below += count
        below_weighted += value * count
        above = total - below
        if below == 0 or above == 0:
            continue
        mean_below = below_weighted / below
        mean_above = (weighted - below_weighted) / above
        spread = below * above * (mean_below - mean_above) ** 2
        if spread > best:
            best, chosen = spread, value + 1
    return chosen


def _read(grey: Image.Image, threshold: int) -> Keypad | str:
    """The keypad read at this threshold, or why it cannot be read."""
    keys = tuple(_read_key(_crop_bits(grey, i, threshold)) for i in range(KEYS))
    for digit in DIGITS:
        count = keys.count(digit)
        if count != 1:
            where = "no key" if count == 0 else f"{count} keys"
            return f"keypad shows digit {digit} on {where}"
    return Keypad(keys)


def decode_keypad(image: bytes) -> Keypad:
    """The keys of a keypad image; SchoolPageError if it is not one we can read for sure."""
    try:
        with Image.open(io.BytesIO(image)) as opened:
            # Check the size before decoding pixels so a huge image costs nothing.
            if opened.size != KEYPAD_SIZE:
                raise SchoolPageError(f"keypad image is {opened.size}, expected {KEYPAD_SIZE}")
            grey = opened.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SchoolPageError(f"keypad image unreadable: {type(exc).__name__}") from exc
    # The reference threshold first; a brightened or darkened copy moves the ink
    # past it, so then the image's own split between ink and paper.
    reason = ""
    for threshold in dict.fromkeys((THRESHOLD, _otsu(grey))):
        read = _read(grey, threshold)
        if isinstance(read, Keypad):
            return read
        reason = reason or read
    raise SchoolPageError(reason)


_DIGITS = re.compile(r"[0-9]+")


def map_password(password: str, keypad: Keypad) -> str:
    """The password with each digit replaced by the index of the key that shows it.

    Raises ValueError for a non-digit password and SchoolPageError when a digit
    sits on key 10 or 11, whose index one character cannot express (never seen).
    """
    if not _DIGITS.fullmatch(password):
        # Never echo the password itself.
        raise ValueError("the card password must be ASCII digits")
    sent = []
    for char in password:
        cell = keypad.cell_of(int(char))
        if cell > 9:
            raise SchoolPageError(f"keypad puts a digit on key {cell}, beyond keys 0..9")
        sent.append(str(cell))
    return "".join(sent)

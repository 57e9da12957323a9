"""Read the academic office's login captcha (ValidateCode.aspx).

Evidence (docs/academic-office-protocol.md): a 46 x 20 RGBA PNG with four red
characters on grey and grey noise lines (the 2013 sample reads `uZRF`); ink is
every pixel with R > 210 and G < 140; the characters are drawn at fixed rows
(2013 compared rows 3 to 18 only); 2013's glyph templates
(assets/captcha-glyphs/, MIT licence beside them) are the ink of real
characters, cut to their width, full height; the alphabet has no 0, 1, I, J,
O, i, j, l, o.

Pixels are ink, background (light grey) or hidden: a grey noise line drawn
over a stroke, or an anti-aliased edge. A short hidden run between two ink
pixels (in a row or a column) is taken as ink: the line crossed a stroke
(that is how the sample's Z keeps its foot). Each template is slid over the
ink; a placement scores the seen pixels where template and ink differ (XOR
over the template's whole box, so a small letter inside a tall one is
penalised by the tall one's ink) over the template's seen ink pixels, as
2013 scored (without the hidden pixels). The four best placements that do not
overlap are the characters, read left to right. Unlike 2013, a captcha is
read only when all four are good matches: an unsure reading is refused
(CaptchaUnreadable) before it is sent, since a wrong one costs a login request.

One template is ours: `Z_sample-1.png` is the Z of the real sample (a slanted
Z, unlike 2013's upright one), its foot completed under the noise line.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from school.errors import SchoolPageError

GLYPHS = Path(__file__).resolve().parent / "assets" / "captcha-glyphs"
CHARACTERS = 4
# Rows compared (2013 cropped rows 3..18 of the image and of every template).
TOP, BOTTOM = 3, 19
# Ink (evidence: 2013's test on every pixel).
INK_MIN_RED, INK_MAX_GREEN = 210, 140
# A placement is a candidate under CANDIDATE_SCORE, and a character is read only
# under READ_SCORE (2013's 0.6 and 0.48). Measured: the real sample's characters
# score 0 to 0.07; simulated ones 98 % right (tests/unit/school/test_academic_captcha.py).
CANDIDATE_SCORE = 0.6
READ_SCORE = 0.48
# Background: light and grey (the sample's is 211, 211, 211).
BACKGROUND_MIN, BACKGROUND_SPREAD = 170, 20
# Hidden pixels (a noise line over a stroke) between ink, at most this many in a
# row or column, are taken as ink; other hidden pixels are not compared.
MAX_FILL = 3
# A placement counts only if this share of its template's ink falls on seen pixels.
MIN_SEEN = 0.6
# Two characters may share this many columns (anti-aliased edges touch).
MAX_OVERLAP = 1


class CaptchaUnreadable(SchoolPageError):
    """The captcha could not be read with confidence; fetch another."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="captcha")


@dataclass(frozen=True, slots=True)
class Glyph:
    """One template: its character, width and ink columns (bit y set = ink at row y)."""

    char: str
    width: int
    columns: tuple[int, ...]
    ink: int


def _row_mask() -> int:
    return sum(1 << y for y in range(TOP, BOTTOM))


ROWS = _row_mask()


def _white(value: object) -> bool:
    return isinstance(value, int) and value > 127


@functools.cache
def glyphs() -> tuple[Glyph, ...]:
    """The templates (white = ink), each character once per template file."""
    found = []
    for path in sorted(GLYPHS.glob("*.png")):
        char = path.stem[0]
        with Image.open(path) as image:
            grey = image.convert("L")
        width, height = grey.size
        pixels = grey.load()
        assert pixels is not None
        columns = tuple(
            sum(1 << y for y in range(height) if _white(pixels[x, y])) & ROWS for x in range(width)
        )
        found.append(Glyph(char, width, columns, sum(c.bit_count() for c in columns)))
    if not found:  # pragma: no cover - the assets ship with the package
        raise RuntimeError(f"no captcha glyphs in {GLYPHS}")
    return tuple(found)


Pixels = list[list[int]]
INK, BACKGROUND, HIDDEN = 1, 0, 2


def _kind(red: int, green: int, blue: int) -> int:
    if red > INK_MIN_RED and green < INK_MAX_GREEN:
        return INK
    if (
        min(red, green, blue) > BACKGROUND_MIN
        and max(red, green, blue) - min(red, green, blue) < BACKGROUND_SPREAD
    ):
        return BACKGROUND
    # A noise line drawn over a character, or a character's anti-aliased edge.
    return HIDDEN


def _pixels(image: bytes) -> Pixels:
    try:
        with Image.open(io.BytesIO(image)) as opened:
            # Through RGBA: a palette image with a transparent colour converts cleanly.
            rgb = opened.convert("RGBA").convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CaptchaUnreadable("the captcha is not an image") from exc
    width, height = rgb.size
    data = rgb.tobytes()
    return [
        [_kind(*data[3 * (y * width + x) : 3 * (y * width + x) + 3]) for x in range(width)]
        for y in range(height)
    ]


def _fill_runs(line: list[int], out: list[int]) -> None:
    """Hidden runs of at most MAX_FILL between two ink pixels become ink in `out`."""
    x = 0
    while x < len(line):
        if line[x] != HIDDEN:
            x += 1
            continue
        start = x
        while x < len(line) and line[x] == HIDDEN:
            x += 1
        bounded = start > 0 and x < len(line) and x - start <= MAX_FILL
        if bounded and line[start - 1] == INK and line[x] == INK:
            for i in range(start, x):
                out[i] = INK


def _unhide(pixels: Pixels) -> Pixels:
    """Pixels with short hidden runs between ink taken as ink (a line crossing a stroke)."""
    height, width = len(pixels), len(pixels[0]) if pixels else 0
    filled = [row[:] for row in pixels]
    for y in range(height):
        _fill_runs(pixels[y], filled[y])
    for x in range(width):
        column = [pixels[y][x] for y in range(height)]
        out = column[:]
        _fill_runs(column, out)
        for y in range(height):
            if out[y] == INK:
                filled[y][x] = INK
    return filled


def ink_columns(image: bytes) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The captcha's ink and its hidden pixels, one bit mask per column (rows TOP..BOTTOM).

    CaptchaUnreadable if it is not an image.
    """
    pixels = _unhide(_pixels(image))
    width = len(pixels[0]) if pixels else 0
    ink, hidden = [], []
    for x in range(width):
        column = [pixels[y][x] for y in range(min(len(pixels), BOTTOM))]
        ink.append(sum(1 << y for y, kind in enumerate(column) if kind == INK) & ROWS)
        hidden.append(sum(1 << y for y, kind in enumerate(column) if kind == HIDDEN) & ROWS)
    return tuple(ink), tuple(hidden)


@dataclass(frozen=True, slots=True)
class Match:
    score: float
    x: int
    glyph: Glyph

    @property
    def end(self) -> int:
        return self.x + self.glyph.width


def _matches(ink: tuple[int, ...], hidden: tuple[int, ...]) -> list[Match]:
    found = []
    width = len(ink)
    for glyph in glyphs():
        for x in range(width - glyph.width + 1):
            wrong = seen = 0
            for i, column in enumerate(glyph.columns):
                known = ~hidden[x + i] & ROWS
                wrong += ((ink[x + i] ^ column) & known).bit_count()
                seen += (column & known).bit_count()
            if seen < glyph.ink * MIN_SEEN:
                continue
            score = wrong / seen
            if score < CANDIDATE_SCORE:
                found.append(Match(score, x, glyph))
    found.sort(key=lambda m: (m.score, m.x))
    return found


def read_captcha(image: bytes) -> str:
    """The four characters of a captcha image; CaptchaUnreadable if unsure."""
    chosen: list[Match] = []
    for match in _matches(*ink_columns(image)):
        if all(min(match.end, c.end) - max(match.x, c.x) <= MAX_OVERLAP for c in chosen):
            chosen.append(match)
            if len(chosen) == CHARACTERS:
                break
    if len(chosen) < CHARACTERS:
        raise CaptchaUnreadable(f"captcha: {len(chosen)} characters found, not {CHARACTERS}")
    worst = max(m.score for m in chosen)
    if worst >= READ_SCORE:
        raise CaptchaUnreadable(f"captcha: a character matches poorly ({worst:.2f})")
    chosen.sort(key=lambda m: m.x)
    return "".join(m.glyph.char for m in chosen)

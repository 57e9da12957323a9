"""Keypad decoding and password mapping."""

from __future__ import annotations

import io
import itertools
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from school.errors import SchoolPageError
from school.keypad import MAX_MISMATCH, decode_keypad, glyph_bitmaps, map_password
from tests.school.keypad_render import GLYPHS, render_keypad, shuffled_cells

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "card_pages"


def test_fixture_keypad() -> None:
    expected = json.loads((PAGES / "keypad.json").read_text(encoding="utf-8"))["cells"]
    assert decode_keypad((PAGES / "keypad.png").read_bytes()) == tuple(expected)


def test_glyph_table_matches_the_renderers_copy() -> None:
    ours = glyph_bitmaps()
    for digit, rows in GLYPHS.items():
        assert ours[digit] == tuple(ch == "#" for row in rows for ch in row)


def test_tolerance_cannot_confuse_two_glyphs() -> None:
    glyphs = glyph_bitmaps()
    closest = min(
        sum(x != y for x, y in zip(a, b, strict=True)) for a, b in itertools.combinations(glyphs, 2)
    )
    assert closest == 6
    assert closest > 2 * MAX_MISMATCH


@pytest.mark.parametrize("seed", range(40))
def test_random_keypads_with_noise_and_jitter(seed: int) -> None:
    rng = random.Random(seed)
    cells = shuffled_cells(rng)
    png = render_keypad(cells, rng, noise=rng.uniform(0.0, 0.3), jitter=2)
    assert decode_keypad(png) == tuple(cells)


class _FixedJitter(random.Random):
    """A Random whose jitter draws (randint(-2, 2)) always return shift."""

    def __init__(self, seed: int, shift: int) -> None:
        super().__init__(seed)
        self.shift = shift

    def randint(self, a: int, b: int) -> int:
        return self.shift if (a, b) == (-2, 2) else super().randint(a, b)


def test_extreme_jitter_corners() -> None:
    # Every cell at the same extreme offset, including the narrow glyph "1".
    for shift in (-2, 2):
        rng = _FixedJitter(7, shift)
        cells = shuffled_cells(rng)
        assert decode_keypad(render_keypad(cells, rng)) == tuple(cells)


def test_one_flipped_block_is_tolerated() -> None:
    glyphs = {d: list(rows) for d, rows in GLYPHS.items()}
    glyphs[8] = [".###.", "#...#", "#...#", ".###.", "#...#", "#.#.#", ".###."]
    rng = random.Random(3)
    cells = shuffled_cells(rng)
    assert decode_keypad(render_keypad(cells, rng, glyphs=glyphs)) == tuple(cells)


def test_unknown_glyph_is_unreadable() -> None:
    glyphs = {d: list(rows) for d, rows in GLYPHS.items()}
    glyphs[8] = ["#####", "#...#", "#####", "#...#", "#####", "#...#", "#####"]
    rng = random.Random(4)
    with pytest.raises(SchoolPageError, match="matches no digit"):
        decode_keypad(render_keypad(shuffled_cells(rng), rng, glyphs=glyphs))


def test_repeated_digit_is_unreadable() -> None:
    rng = random.Random(5)
    with pytest.raises(SchoolPageError, match="exactly once"):
        decode_keypad(render_keypad([1, 2, 3, 4, 5, 6, 7, 8, 9, 9], rng))


def test_blank_cell_is_unreadable() -> None:
    rng = random.Random(6)
    with pytest.raises(SchoolPageError, match="blank"):
        decode_keypad(render_keypad([1, 2, 3, 4, 5, 6, 7, 8, 9], rng))


def test_dark_smudge_is_unreadable() -> None:
    rng = random.Random(8)
    image = Image.open(io.BytesIO(render_keypad(shuffled_cells(rng), rng))).convert("RGB")
    image.putpixel((1, 1), (0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    with pytest.raises(SchoolPageError, match="ink box"):
        decode_keypad(out.getvalue())


@pytest.mark.parametrize("size", [(66, 103), (132, 208)])
def test_wrong_size_is_unreadable(size: tuple[int, int]) -> None:
    out = io.BytesIO()
    Image.new("RGB", size, "white").save(out, "PNG")
    with pytest.raises(SchoolPageError, match="keypad image"):
        decode_keypad(out.getvalue())


@pytest.mark.parametrize("data", [b"", b"<html>login</html>", b"\x89PNG\r\n\x1a\n broken"])
def test_not_a_png_is_unreadable(data: bytes) -> None:
    with pytest.raises(SchoolPageError, match="keypad image"):
        decode_keypad(data)


def test_map_password_doc_rule() -> None:
    cells = [3, 7, 0, 1, 9, 8, 2, 6, 4, 5]
    # The protocol doc's example says "296842", but by its own rule 6 is in cell 7
    # (cells[7] == 6), so the mapped password is 296742.
    assert map_password("052690", cells) == "296742"
    assert map_password("0123456789", cells) == "2360897154"


def test_map_password_identity_keypad() -> None:
    assert map_password("052690", tuple(range(10))) == "052690"


@pytest.mark.parametrize("password", ["", "05269a", "12 34", "١٢٣", "-1"])
def test_map_password_rejects_non_digits_without_echo(password: str) -> None:
    with pytest.raises(ValueError, match="digits") as info:
        map_password(password, list(range(10)))
    if password:
        assert password not in str(info.value)


def test_map_password_rejects_a_bad_keypad() -> None:
    with pytest.raises(ValueError, match="keypad"):
        map_password("1234", [1, 1, 2, 3, 4, 5, 6, 7, 8, 9])

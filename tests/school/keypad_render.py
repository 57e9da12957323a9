"""Card center keypads drawn per the protocol doc; run as a module to rewrite the fixture."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "card_pages"
FIXTURE_SEED = 2013

# An independent copy of the doc's glyphs, so a typo in school/keypad.py shows up.
GLYPHS = {
    0: [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
    1: ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    2: [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
    3: ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
    4: ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    5: ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
    6: ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
    7: ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
    8: [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
    9: [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
}


def render_keypad(
    cells: Sequence[int],
    rng: random.Random,
    *,
    noise: float = 0.08,
    jitter: int = 2,
    glyphs: dict[int, list[str]] | None = None,
) -> bytes:
    """A 66 x 104 RGB PNG showing cells[i] in cell i (cells 10, 11 blank), with noise and jitter."""
    table = GLYPHS if glyphs is None else glyphs
    image = Image.new("RGB", (66, 104))
    pixels = image.load()
    assert pixels is not None
    for y in range(104):
        for x in range(66):
            if rng.random() < noise:
                pixels[x, y] = tuple(rng.randint(150, 199) for _ in range(3))
            else:
                pixels[x, y] = tuple(rng.randint(200, 255) for _ in range(3))
    for index, digit in enumerate(cells):
        top = 26 * (index // 3) + 6 + rng.randint(-jitter, jitter)
        left = 22 * (index % 3) + 6 + rng.randint(-jitter, jitter)
        for r, row in enumerate(table[digit]):
            for c, ch in enumerate(row):
                if ch != "#":
                    continue
                for dy in range(2):
                    for dx in range(2):
                        ink = tuple(rng.randint(0, 90) for _ in range(3))
                        pixels[left + 2 * c + dx, top + 2 * r + dy] = ink
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def shuffled_cells(rng: random.Random) -> list[int]:
    """A random keypad order: the digit of each cell 0..9."""
    cells = list(range(10))
    rng.shuffle(cells)
    return cells


def write_fixture() -> None:
    """Write keypad.png and keypad.json (its expected cells) into the fixture folder."""
    rng = random.Random(FIXTURE_SEED)
    cells = shuffled_cells(rng)
    (FIXTURE_DIR / "keypad.png").write_bytes(render_keypad(cells, rng))
    (FIXTURE_DIR / "keypad.json").write_text(
        json.dumps({"seed": FIXTURE_SEED, "cells": cells}) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    write_fixture()

"""The academic office captcha reader: the real 2013 sample, re-encoded and noisy copies of
it, and simulated captchas in bulk."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image

from schoolsim.academic.captcha import render_captcha
from systems.academic.captcha import CaptchaUnreadable, read_captcha

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "jwc-captcha"
SAMPLE = (FIXTURES / "sample-1.png").read_bytes()


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def test_the_real_sample_reads_uZRF() -> None:
    assert read_captcha(SAMPLE) == "uZRF"


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("PNG", "RGB", {}),
        ("PNG", "P", {}),
        ("BMP", "RGB", {}),
        ("JPEG", "RGB", {"quality": 95, "subsampling": 0}),
    ],
)
def test_re_encoded_copies_read_the_same(fmt: str, mode: str, options: dict[str, object]) -> None:
    with Image.open(io.BytesIO(SAMPLE)) as image:
        copy = _save(image.convert(mode), fmt, **options)
    assert read_captcha(copy) == "uZRF"


@pytest.mark.parametrize("seed", range(5))
def test_noisy_copies_read_the_same(seed: int) -> None:
    rng = random.Random(seed)
    with Image.open(io.BytesIO(SAMPLE)) as opened:
        image = opened.convert("RGBA")
    pixels = image.load()
    assert pixels is not None
    # Grey specks on the background, and grey over a few ink pixels of R and F (the
    # u and Z are left alone: the Z's foot is already half hidden in the real sample).
    colour = {(x, y): image.getpixel((x, y)) for x in range(46) for y in range(20)}
    background = [spot for spot, c in colour.items() if c == (211, 211, 211, 255)]
    ink = [spot for spot, c in colour.items() if spot[0] >= 21 and c == (249, 31, 31, 255)]
    for spot in rng.sample(background, 25) + rng.sample(ink, 3):
        pixels[spot] = (105, 105, 105, 255)
    assert read_captcha(_save(image, "PNG")) == "uZRF"


def test_an_image_without_red_ink_is_refused_not_guessed() -> None:
    # The sample's grey copy (2013's intermediate image): no pixel passes the ink test.
    with pytest.raises(CaptchaUnreadable):
        read_captcha((FIXTURES / "sample-1-ink.png").read_bytes())


def test_a_page_instead_of_an_image_is_refused() -> None:
    with pytest.raises(CaptchaUnreadable):
        read_captcha(b"<html><body>Server Too Busy</body></html>")


def test_simulated_captchas_are_read_in_bulk() -> None:
    rng = random.Random(2013)
    right = wrong = refused = 0
    for _ in range(200):
        png, text = render_captcha(rng)
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (46, 20) and image.mode == "RGBA"
        try:
            got = read_captcha(png)
        except CaptchaUnreadable:
            refused += 1
            continue
        if got == text:
            right += 1
        else:
            wrong += 1
    assert right >= 190, (right, wrong, refused)

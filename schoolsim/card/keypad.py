"""The password keypad and captcha images.

The keypad is the real one (evidence: the 2013 sample, assets/keypad-2013.jpg,
MIT licence in assets/LICENSE-jnu.fm): 117 x 180 greyscale JPEG at quality 75
(the sample's own quantisation tables), a title bar 密码小键盘, and 4 x 3 keys
on a 36 px pitch. Each keypad is the sample with its key faces moved: the ten
digits shuffled over keys 0..9, 清除 and 关闭 on keys 10 and 11 (every sample
seen). So the frame, the title and the faces are the real pixels, and the
2013 decoder (threshold 118, fixed crops, an exact hash per face) reads it.

The captcha is a guess (no client ever read it): 4 digits on a noisy background.
"""

import functools
import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

ASSET = Path(__file__).resolve().parent / "assets" / "keypad-2013.jpg"
# What the sample shows on keys 0..11.
SAMPLE_KEYS = ("2", "7", "5", "8", "3", "0", "6", "9", "1", "4", "清除", "关闭")
KEYPAD_SIZE = (117, 180)
FACE = 23
JPEG_QUALITY = 75
THRESHOLD = 118


def face_box(index: int) -> tuple[int, int, int, int]:
    """The 23 x 23 face of key index (reading order), as the 2013 decoder cut it."""
    row, column = divmod(index, 3)
    left, top = 10 + 36 * column, 36 + 36 * row
    return left, top, left + FACE, top + FACE


@functools.cache
def _sample() -> tuple[Image.Image, dict[str, Image.Image]]:
    """The sample keypad (greyscale) and its faces by label."""
    with Image.open(ASSET) as image:
        grey = image.convert("L")
    if grey.size != KEYPAD_SIZE:  # pragma: no cover - the asset is fixed
        raise RuntimeError(f"{ASSET} is {grey.size}, expected {KEYPAD_SIZE}")
    return grey, {label: grey.crop(face_box(i)) for i, label in enumerate(SAMPLE_KEYS)}


def _binary(image: Image.Image) -> bytes:
    return image.point(lambda v: 0 if v < THRESHOLD else 255).tobytes()


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def draw_keypad(keys: list[str]) -> bytes:
    """The keypad JPEG showing keys[i] on key i (labels of SAMPLE_KEYS)."""
    base, faces = _sample()
    image = base.copy()
    for index, label in enumerate(keys):
        image.paste(faces[label], face_box(index)[:2])
    data = _jpeg(image, JPEG_QUALITY)
    # Re-encoding moved faces could in principle flip a pixel across the
    # threshold and break the 2013 exact-hash decoder; never seen, but checked.
    with Image.open(io.BytesIO(data)) as decoded:
        grey = decoded.convert("L")
    if all(
        _binary(grey.crop(face_box(i))) == _binary(faces[label]) for i, label in enumerate(keys)
    ):
        return data
    return _jpeg(image, 100)  # pragma: no cover


def render_keypad(rng: random.Random) -> tuple[bytes, list[str]]:
    """A freshly shuffled keypad JPEG and what each of its 12 keys shows."""
    digits = [str(d) for d in range(10)]
    rng.shuffle(digits)
    keys = [*digits, "清除", "关闭"]
    return draw_keypad(keys), keys


# 5 x 7 digit glyphs for the captcha ("#" = ink).
_CAPTCHA_GLYPHS: dict[int, tuple[str, ...]] = {
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


def render_captcha(rng: random.Random) -> tuple[bytes, str]:
    """A captcha PNG of 4 random digits, and those digits."""
    text = "".join(str(rng.randrange(10)) for _ in range(4))
    base = tuple(rng.randint(225, 255) for _ in range(3))
    img = Image.new("RGB", (60, 22), (base[0], base[1], base[2]))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        colour = (rng.randint(100, 200), rng.randint(100, 200), rng.randint(100, 200))
        draw.line(
            (rng.randrange(60), rng.randrange(22), rng.randrange(60), rng.randrange(22)),
            fill=colour,
        )
    for i, char in enumerate(text):
        ink = (rng.randint(0, 120), rng.randint(0, 120), rng.randint(0, 120))
        x, y = 3 + 14 * i + rng.randint(-1, 1), 4 + rng.randint(-2, 2)
        for row, line in enumerate(_CAPTCHA_GLYPHS[int(char)]):
            for col, dot in enumerate(line):
                if dot == "#":
                    draw.rectangle(
                        (x + 2 * col, y + 2 * row, x + 2 * col + 1, y + 2 * row + 1), ink
                    )
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue(), text

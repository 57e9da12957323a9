"""Keypad decoding and password mapping, on the real 2013 keypad image and copies of it."""

from __future__ import annotations

import itertools
import random

import pytest
from PIL import Image, ImageEnhance, ImageFilter

from school.errors import SchoolPageError
from systems.card.keypad import (
    CLEAR,
    CLOSE,
    MAX_DISTANCE,
    MIN_MARGIN,
    Keypad,
    _bits,
    decode_keypad,
    map_password,
)
from systems.card.keypad_glyphs import FACES
from tests.unit.school.keypad_render import (
    SAMPLE,
    SAMPLE_DIR,
    SAMPLE_KEYS,
    TEMPLATE_FILES,
    add_noise,
    arrange,
    encode,
    face_box,
    sample,
    shuffled_keys,
    speckle,
)


def test_the_real_keypad_reads_as_the_reference_says() -> None:
    keypad = decode_keypad(SAMPLE.read_bytes())
    assert keypad.rows() == [
        ["2", "7", "5"],
        ["8", "3", "0"],
        ["6", "9", "1"],
        ["4", "清除", "关闭"],
    ]
    assert map_password("052690", keypad) == "520675"


def _binary(image: Image.Image) -> tuple[str, ...]:
    grey = image.convert("L")
    return tuple(
        "".join("#" if grey.getpixel((x, y)) < 118 else "." for x in range(grey.width))  # type: ignore[operator]
        for y in range(grey.height)
    )


@pytest.mark.parametrize(("name", "label"), sorted(TEMPLATE_FILES.items()))
def test_faces_are_the_2013_templates(name: str, label: str) -> None:
    with Image.open(SAMPLE_DIR / name) as template:
        assert _binary(template) == FACES[label]


def test_faces_are_the_crops_of_the_real_image() -> None:
    real = sample()
    for index, label in enumerate(SAMPLE_KEYS):
        assert _binary(real.crop(face_box(index))) == FACES[label]


def test_thresholds_leave_no_face_between_two_others() -> None:
    faces = [_bits(rows) for rows in FACES.values()]
    closest = min((a ^ b).bit_count() for a, b in itertools.combinations(faces, 2))
    assert closest == 25
    # A crop within MAX_DISTANCE of one face and MIN_MARGIN closer to it than
    # to any other cannot be equally close to two faces.
    assert MIN_MARGIN > 0
    assert MAX_DISTANCE < 529 // 2


@pytest.mark.parametrize("quality", [10, 25, 50, 75, 95])
def test_re_encoded_copies(quality: int) -> None:
    keypad = decode_keypad(encode(sample(), "JPEG", quality))
    assert keypad.keys == SAMPLE_KEYS


def test_png_copy() -> None:
    assert decode_keypad(encode(sample(), "PNG")).keys == SAMPLE_KEYS


@pytest.mark.parametrize("factor", [0.4, 0.7, 1.4, 2.0])
def test_brightened_and_darkened_copies(factor: float) -> None:
    image = ImageEnhance.Brightness(sample()).enhance(factor)
    assert decode_keypad(encode(image, "JPEG", 85)).keys == SAMPLE_KEYS


@pytest.mark.parametrize("shift", [60, 110, 140])
def test_lifted_ink_uses_the_images_own_threshold(shift: int) -> None:
    # Ink lifted past 118 reads as paper at the reference threshold.
    lifted = sample().point(lambda v: min(255, v + shift))
    assert decode_keypad(encode(lifted, "PNG")).keys == SAMPLE_KEYS


@pytest.mark.parametrize("sigma", [10, 30, 50])
def test_noisy_copies(sigma: float) -> None:
    noisy = add_noise(sample(), random.Random(sigma), sigma)
    assert decode_keypad(encode(noisy, "JPEG", 80)).keys == SAMPLE_KEYS


@pytest.mark.parametrize("share", [0.02, 0.08])
def test_speckled_copies(share: float) -> None:
    noisy = speckle(sample(), random.Random(7), share)
    assert decode_keypad(encode(noisy, "PNG")).keys == SAMPLE_KEYS


def test_blurred_copy() -> None:
    blurred = sample().filter(ImageFilter.GaussianBlur(1))
    # The digits still read; 关闭 may not, and is never needed.
    assert decode_keypad(encode(blurred, "JPEG", 85)).keys[:10] == SAMPLE_KEYS[:10]


@pytest.mark.parametrize("seed", range(12))
def test_other_shuffles_of_the_real_faces(seed: int) -> None:
    rng = random.Random(seed)
    keys = shuffled_keys(rng)
    image = encode(arrange(keys), "JPEG", rng.randint(30, 95))
    keypad = decode_keypad(image)
    assert list(keypad.keys) == keys
    password = "".join(rng.choice("0123456789") for _ in range(6))
    assert map_password(password, keypad) == "".join(str(keys.index(c)) for c in password)


def test_function_keys_elsewhere() -> None:
    # 清除 and 关闭 in the middle, digits 7 and 9 on keys 10 and 11.
    keys = ["0", "1", "2", "3", CLEAR, "4", "5", CLOSE, "6", "8", "7", "9"]
    keypad = decode_keypad(encode(arrange(keys), "JPEG", 80))
    assert list(keypad.keys) == keys
    assert map_password("012345", keypad) == "012356"
    # Key 10 has no one-character index: refuse rather than guess.
    with pytest.raises(SchoolPageError, match="key 10"):
        map_password("705269", keypad)


def test_blank_last_keys() -> None:
    keys: list[str | None] = [*SAMPLE_KEYS[:10], None, None]
    keypad = decode_keypad(encode(arrange(keys), "JPEG", 80))
    assert keypad.keys == (*SAMPLE_KEYS[:10], "", "")
    assert map_password("052690", keypad) == "520675"


def test_unknown_faces_on_the_last_keys() -> None:
    image = arrange([*SAMPLE_KEYS[:10], None, None])
    # Other key faces (not 清除/关闭): a filled box and a cross.
    image.paste(0, (52, 150, 64, 162))
    for i in range(15):
        image.putpixel((92 + i, 152 + i // 2), 0)
    keypad = decode_keypad(encode(image, "PNG"))
    assert keypad.keys[:10] == SAMPLE_KEYS[:10]
    assert keypad.keys[10:] == ("", "")


def test_a_missing_digit_is_unreadable() -> None:
    keys: list[str | None] = list(SAMPLE_KEYS)
    keys[4] = None  # the 3
    with pytest.raises(SchoolPageError, match="digit 3 on no key"):
        decode_keypad(encode(arrange(keys), "PNG"))


def test_a_repeated_digit_is_unreadable() -> None:
    keys = list(SAMPLE_KEYS)
    keys[4] = "2"  # instead of the 3
    with pytest.raises(SchoolPageError, match="digit 2 on 2 keys"):
        decode_keypad(encode(arrange(keys), "PNG"))


def test_a_smudged_digit_is_unreadable() -> None:
    image = sample()
    image.paste(0, (48, 40, 66, 54))  # most of the 7
    with pytest.raises(SchoolPageError, match="digit 7"):
        decode_keypad(encode(image, "PNG"))


def test_noise_beyond_reading_is_unreadable() -> None:
    rng = random.Random(11)
    noise = Image.new("L", (117, 180))
    noise.putdata([rng.randrange(256) for _ in range(117 * 180)])
    with pytest.raises(SchoolPageError, match="keypad"):
        decode_keypad(encode(noise, "PNG"))


def test_blank_image_is_unreadable() -> None:
    with pytest.raises(SchoolPageError, match="keypad"):
        decode_keypad(encode(Image.new("L", (117, 180), 255), "PNG"))


@pytest.mark.parametrize("size", [(66, 104), (116, 180), (234, 360)])
def test_wrong_size_is_unreadable(size: tuple[int, int]) -> None:
    with pytest.raises(SchoolPageError, match="keypad image is"):
        decode_keypad(encode(Image.new("L", size, 255), "PNG"))


@pytest.mark.parametrize("data", [b"", b"<html>login</html>", b"\xff\xd8\xff\xe0 broken jpeg"])
def test_not_an_image_is_unreadable(data: bytes) -> None:
    with pytest.raises(SchoolPageError, match="keypad image"):
        decode_keypad(data)


def test_map_password_on_a_plain_keypad() -> None:
    keypad = Keypad((*(str(d) for d in range(10)), CLEAR, CLOSE))
    assert map_password("052690", keypad) == "052690"


@pytest.mark.parametrize("password", ["", "05269a", "12 34", "١٢٣", "-1"])
def test_map_password_rejects_non_digits_without_echo(password: str) -> None:
    keypad = decode_keypad(SAMPLE.read_bytes())
    with pytest.raises(ValueError, match="digits") as info:
        map_password(password, keypad)
    if password:
        assert password not in str(info.value)

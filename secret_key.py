"""The server's secret key: whether production may use it, and where it may come from.

A key is judged in the form that carries its bits: a hex key by the bytes it decodes
to, a base64 key by its bytes or its text (the weaker), any other key as text; bytes
that are themselves text (the hex or base64 of a phrase) are judged as that text.
Every text form is checked against the development key and placeholder words with
leetspeak undone (`1n53cur3`, `ch4ng3`).

Entropy is estimated as the cheapest way to write the key from known parts (the idea
of zxcvbn, in small): a known word costs its place in KNOWN_WORDS, a run of letters
that reads like English (its letter pairs among the commonest) what English costs a
letter, a run of constant step (`abcd`, `1357`, `aaaa`) or a repeat of an earlier
part a few bits, a year 7 bits, digits 3.3 bits each, a separator repeated 1 bit;
any other character log2 of the alphabet the key's letters and digits span (hex: 16),
a symbol log2 of the printable symbols, a byte of a decoded key 8 bits. A random key
scores near its size (of 3,000 keys of 32 random bytes in base64, none under 200
bits; of 32 random letters and digits, none under 150); a phrase, a pattern or a
disguised default scores far less.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Public on purpose: it marks a development setup, and production refuses it.
DEFAULT_SECRET_KEY = "insecure-development-key-change-me"  # noqa: S105

# A production key must be at least this long (32 hex characters are 128 bits) and
# carry at least MIN_SECRET_KEY_BITS by the estimate below: 32 random bytes
# (`head -c 32 /dev/urandom | base64`, 256 bits) pass with room to spare.
MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_BITS = 128
MIN_SECRET_KEY_DISTINCT = 8

# Words that mark a key typed by hand or copied from docs: refused outright (each is
# 5+ letters, so a random key holds one by chance less than once in 10^5 keys).
PLACEHOLDER_WORDS = (
    "change",
    "secret",
    "password",
    "passwd",
    "default",
    "example",
    "insecure",
    "sample",
    "placeholder",
    "dummy",
)
# Words a hand-made key is built of: each costs only its place in this list.
KNOWN_WORDS = (
    *PLACEHOLDER_WORDS,
    "development",
    "production",
    "staging",
    "jnufm",
    "campus",
    "school",
    "server",
    "admin",
    "root",
    "test",
    "qwerty",
    "letmein",
    "welcome",
    "master",
    "login",
    "hello",
    "monkey",
    "dragon",
    "iloveyou",
    "key",
    "token",
    "pass",
    "prod",
    "dev",
    "api",
    "app",
    "jnu",
)

# Leetspeak undone, and letters that look alike made one (l, 1, i, |, !).
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "l": "i",
        "|": "i",
        "!": "i",
        "3": "e",
        "4": "a",
        "@": "a",
        "5": "s",
        "$": "s",
        "7": "t",
        "+": "t",
        "8": "b",
        "9": "g",
    }
)

# The estimate's prices, in bits.
_WORD_BITS = math.log2(len(KNOWN_WORDS)) + 1  # which known word, and its case
_LETTER_BITS = 2.8  # a letter of an English-like run (a word of ~5 letters: ~14 bits)
_RUN_MIN_BITS = 10.0  # a run of letters costs at least one short, common word
_SYMBOL_BITS = math.log2(33)  # one of the printable ASCII symbols
_UUID_BITS = 122.0  # the random bits of a version 4 UUID
_STEP_BITS = 4.0  # the step of a run like abcd or 1357
_YEAR_BITS = 7.0
_REUSED_SEPARATOR_BITS = 1.0
_DIGIT_BITS = math.log2(10)
# Parts shorter than these are taken as chance (in random text they occur often; as
# bytes, five in a row almost never do by chance).
_TEXT_PART_MIN = 4
_BYTES_PART_MIN = 5
# Runs of letters read as words from this length (see _wordlike; past a short word,
# one letter pair in four may be uncommon).
_WORD_RUN_MIN = 3
_SHORT_WORD = 5
# The 200 commonest letter pairs in English words (counted over 20,000 distinct words
# of English prose): 85% of the pairs of a word, 30% of pairs drawn at random.
_COMMON_PAIRS_TEXT = """
    ab ac ad ag ai ak al am an ap ar as at au av ba be bi bl bo br bu ca ce ch ci ck
    cl co cr ct cu da de di do ds ea ec ed ee ef eg ei el em en ep er es et ev ew ex fa
    fe ff fi fo fu ga ge gh gi gr ha he hi ho ht ia ib ic id ie if ig il im in io ip ir
    is it iv iz ke ki la ld le li ll lo ls lt lu ly ma mb me mi mm mo mp na nc nd ne nf
    ng ni nn no ns nt nu ob oc od of ol om on oo op or os ot ou ov ow pa pe pi pl po pp
    pr pt pu qu ra rc rd re rg ri rm rn ro rr rs rt ru ry sa sc se sh si so sp ss st su
    ta tc te th ti tl to tr ts tt tu ty ua ub ue uf ui ul um un up ur us ut va ve vi wa
    wi xp xt yp ze"""
COMMON_PAIRS = frozenset(_COMMON_PAIRS_TEXT.split())
# Only this much of a (very long) key is estimated, and repeats followed this far:
# enough to pass or fail it, in well under a second.
_JUDGED_CHARS = 256
_REPEAT_MAX = 64
# How many layers of hex or base64 are undone (the hex of the base64 of a phrase).
_DECODE_DEPTH = 3

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_YEAR = re.compile(r"(?:19|20)[0-9]{2}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_FOLDED_WORDS = sorted({word.translate(_LEET) for word in KNOWN_WORDS}, key=len, reverse=True)


def secret_key_weakness(key: str) -> str | None:
    """Why key is too weak for production, or None if it may be used."""
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"shorter than {MIN_SECRET_KEY_LENGTH} characters"
    readings = _readings(key, "", _DECODE_DEPTH)
    default = _letters(DEFAULT_SECRET_KEY)
    for how, reading in readings:
        if isinstance(reading, str) and default in _letters(reading):
            return f"the development key written another way{how}"
    for how, reading in readings:
        if isinstance(reading, str):
            letters = _letters(reading)
            for word in PLACEHOLDER_WORDS:
                if _letters(word) in letters:
                    return f"it contains the placeholder word {word!r}{how}"
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        return f"fewer than {MIN_SECRET_KEY_DISTINCT} distinct characters"
    for period in range(1, len(key) // 2 + 1):
        if key == (key[:period] * (len(key) // period + 1))[: len(key)]:
            return "a repeated pattern"
    # Runs like "abcdef", "aaaa" or "13579": most neighbours differ by the same step.
    steps = Counter(ord(b) - ord(a) for a, b in itertools.pairwise(key))
    if steps.most_common(1)[0][1] * 2 > len(key) - 1:
        return "a sequence of characters"
    bits, how = min((_estimated_bits(reading), how) for how, reading in readings)
    if bits < MIN_SECRET_KEY_BITS:
        return f"about {bits:.0f} bits of estimated entropy{how}, fewer than {MIN_SECRET_KEY_BITS}"
    return None


def _letters(text: str) -> str:
    """text lowercased, leetspeak undone, only letters and digits kept."""
    return "".join(c for c in text.lower().translate(_LEET) if c.isalnum())


def _readings(key: str, how: str, depth: int) -> list[tuple[str, str | bytes]]:
    """The forms key may carry its bits in: (how it was read, text or bytes)."""
    decoded: list[tuple[str, bytes]] = []
    if _HEX.fullmatch(key) and len(key) >= MIN_SECRET_KEY_LENGTH:
        decoded.append((" (read as hex)", bytes.fromhex(key)))
        found: list[tuple[str, str | bytes]] = []
    else:
        found = [(how, key)]
        raw = _base64(key)
        if raw is not None:
            decoded.append((" (read as base64)", raw))
    for name, raw in decoded:
        label = how or name
        text = _as_text(raw)
        if text is not None and depth > 1:
            found += _readings(text, label, depth - 1)
        elif text is not None:
            found.append((label, text))
        else:
            found.append((label, raw))
    return found


def _base64(key: str) -> bytes | None:
    """The bytes of a base64 (or URL-safe base64) key of 16 bytes or more, else None."""
    if not _BASE64.fullmatch(key):
        return None
    body = key.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) >= 16 else None


def _as_text(raw: bytes) -> str | None:
    """raw as text, if it is printable text (a phrase encoded), else None."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _estimated_bits(reading: str | bytes) -> float:
    """The bits an attacker must guess to find this text or these bytes."""
    if isinstance(reading, bytes):
        symbols = list(reading[:_JUDGED_CHARS])
        return _cheapest(symbols, [8.0] * len(symbols), _BYTES_PART_MIN, None)
    text = reading[:_JUDGED_CHARS]
    if _UUID.fullmatch(text):
        return _UUID_BITS
    # A letter or digit costs log2 of the alphabet the key's letters and digits span
    # (hex: 16); a symbol log2 of the printable symbols, or 1 bit if it is the same
    # as the symbol before it (a separator: a-b-c).
    letters = {c for c in text if c.isalpha()}
    if letters and (letters <= set("abcdef") or letters <= set("ABCDEF")):
        alphabet = 16
    else:
        alphabet = sum(
            size
            for size, present in (
                (26, any(c.islower() for c in letters)),
                (26, any(c.isupper() for c in letters)),
                (10, any(c.isdigit() for c in text)),
            )
            if present
        )
    alnum_bits = math.log2(max(alphabet, 2))
    prices = []
    separator = ""
    for c in text:
        if c.isalnum():
            prices.append(alnum_bits)
        else:
            prices.append(_REUSED_SEPARATOR_BITS if c == separator else _SYMBOL_BITS)
            separator = c
    return _cheapest([ord(c) for c in text], prices, _TEXT_PART_MIN, text)


def _cheapest(symbols: list[int], prices: list[float], part_min: int, text: str | None) -> float:
    """The cheapest cover of symbols by the parts the module docstring prices (prices:
    of each symbol on its own)."""
    n = len(symbols)
    best = [0.0] + [math.inf] * n

    def offer(end: int, cost: float) -> None:
        if cost < best[end]:
            best[end] = cost

    for i in range(n):
        here = best[i]
        offer(i + 1, here + prices[i])
        # A run of constant step: abcd, 1357, aaaa (or bytes 01 02 03 04 05).
        end = min(i + 2, n)
        if end - i == 2:
            step = symbols[i + 1] - symbols[i]
            while end < n and symbols[end] - symbols[end - 1] == step:
                end += 1
        if end - i >= part_min:
            offer(end, here + prices[i] + _STEP_BITS + math.log2(end - i))
        # A repeat of an earlier part.
        length = _repeat_length(symbols, i, part_min)
        if length:
            offer(i + length, here + _STEP_BITS + math.log2(i + 1))
        if text is not None:
            for end, cost in _text_parts(text, i):
                offer(end, here + cost)
    return best[n]


def _text_parts(text: str, i: int) -> list[tuple[int, float]]:
    """The parts of text that start at i and are cheaper than their characters: a known
    word, an English-like run of letters, a year, a run of digits (end, bits)."""
    parts: list[tuple[int, float]] = []
    folded = text[i:].lower().translate(_LEET)
    for word in _FOLDED_WORDS:
        if folded.startswith(word):
            swapped = sum(a != b for a, b in zip(text[i : i + len(word)], word, strict=True))
            parts.append((i + len(word), _WORD_BITS + swapped))
            break
    run = re.match(r"[A-Z]?[a-z]+|[A-Z]+", text[i:])
    if run is not None:
        case = 0.0 if run.group().islower() else 1.0
        for length in range(_WORD_RUN_MIN, len(run.group()) + 1):
            if _wordlike(run.group()[:length]):
                bits = max(_RUN_MIN_BITS, _LETTER_BITS * length) + case
                parts.append((i + length, bits))
    if _YEAR.match(text, i):
        parts.append((i + 4, _YEAR_BITS))
    digits = re.match(r"[0-9]+", text[i:])
    if digits is not None and len(digits.group()) >= _TEXT_PART_MIN:
        parts.append((i + len(digits.group()), _DIGIT_BITS * len(digits.group())))
    return parts


def _wordlike(run: str) -> bool:
    """Whether a run of letters reads like words, not like letters drawn at random: its
    letter pairs are among English's commonest (all of them in a short run; in a longer
    one, all but one in four)."""
    lowered = run.lower()
    uncommon = sum(a + b not in COMMON_PAIRS for a, b in itertools.pairwise(lowered))
    if len(lowered) <= _SHORT_WORD:
        return uncommon == 0
    return uncommon <= (len(lowered) - 1) // 4


def _repeat_length(symbols: list[int], i: int, part_min: int) -> int:
    """The length of the longest part starting at i that appeared before (0 if shorter
    than part_min)."""
    longest = 0
    for start in range(i):
        length = 0
        while (
            i + length < len(symbols)
            and length < _REPEAT_MAX
            and symbols[start + length] == symbols[i + length]
        ):
            length += 1
            if start + length >= i:
                break
        longest = max(longest, length)
    return longest if longest >= part_min else 0


@dataclass(frozen=True, slots=True)
class KeyFile:
    """A secret key read from a file, and who may read that file."""

    path: str
    key: str
    mode: int
    owner: int


def read_key_file(path: str) -> KeyFile:
    """The key in path (stripped), with the file's permissions as they were when read.

    Raises OSError when it cannot be read.
    """
    with open(path, encoding="utf-8") as file:
        info = os.fstat(file.fileno())
        key = file.read().strip()
    return KeyFile(path, key, stat.S_IMODE(info.st_mode), info.st_uid)


def key_file_problem(found: KeyFile, env: dict[str, str]) -> str | None:
    """Why production must not trust this key file, or None.

    A key file must be readable by the server's user alone: mode 0600 or stricter,
    owned by it. systemd's credentials (LoadCredential=, under $CREDENTIALS_DIRECTORY)
    pass as they are: systemd makes them readable by this service only (on a file
    system without ACLs, by giving it the file; with ACLs, its permission bits show
    the ACL's mask).
    """
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials and Path(found.path).resolve().is_relative_to(Path(credentials).resolve()):
        return None
    if found.mode & 0o077:
        return (
            f"{found.path} may be read by others (mode {found.mode:04o}); production "
            f"mode needs 0600 or stricter: chmod 600 {found.path}"
        )
    if found.owner != os.geteuid():
        return (
            f"{found.path} belongs to uid {found.owner}, not to this server's user "
            f"(uid {os.geteuid()}): chown it to that user"
        )
    return None

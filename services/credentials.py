"""Student credentials: checked for shape, kept out of reprs, reduced to a keyed verifier."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field

from services import codes
from services.errors import BadInput

STUDENT_ID = re.compile(r"[0-9]{6,16}")
MAX_FIELD_LENGTH = 64


@dataclass(frozen=True, slots=True)
class PasswordRule:
    """What a school system's password looks like, and what it is called."""

    name: str
    shape: re.Pattern[str]
    described: str


PASSWORD_RULES = {
    # The card center's keypad has digits only; its passwords are 6 of them (evidence).
    "card": PasswordRule("card password", re.compile(r"[0-9]{6}"), "exactly 6 digits"),
    # The academic office's is a text field (guess: printable ASCII, as its GBK form posts it).
    "academic": PasswordRule(
        "academic office password",
        re.compile(r"[\x20-\x7e]{1,32}"),
        "1 to 32 printable ASCII characters",
    ),
}


@dataclass(frozen=True, slots=True)
class Credentials:
    """A student number and a school system's password; the password never appears in repr
    or logs. `proven`: they come from a student's token (services/tokens.py), not from
    the request: no guess, so no limit on guesses applies to them."""

    student_id: str
    password: str = field(repr=False)
    proven: bool = False

    @classmethod
    def parse(
        cls, student_id: str | None, password: str | None, system: str = "card"
    ) -> Credentials:
        """Check both fields' shape for a school system's password. Raises BadInput
        naming the first bad field."""
        rule = PASSWORD_RULES[system]
        if student_id is None or student_id.strip() == "":
            raise BadInput(codes.MISSING_STUDENT_ID, "a student number is required")
        if password is None or password == "":
            raise BadInput(codes.MISSING_PASSWORD, f"a {rule.name} is required")
        student_id = student_id.strip()
        if len(student_id) > MAX_FIELD_LENGTH or not STUDENT_ID.fullmatch(student_id):
            raise BadInput(codes.INVALID_STUDENT_ID, "the student number must be 6 to 16 digits")
        if len(password) > MAX_FIELD_LENGTH or not rule.shape.fullmatch(password):
            raise BadInput(codes.INVALID_PASSWORD, f"the {rule.name} must be {rule.described}")
        return cls(student_id, password)


def make_verifier(secret_key: bytes, system: str, creds: Credentials) -> str:
    """HMAC-SHA256 of school system, student id and password under the server's secret, hex.

    Without the key, a leaked table gives nothing to brute-force the 10^6
    possible passwords against. The system is part of it because each school
    system has its own password.
    """
    return verifier_bytes(secret_key, system, creds).hex()


def verifier_bytes(secret_key: bytes, system: str, creds: Credentials) -> bytes:
    """make_verifier's HMAC, as bytes."""
    message = f"{system}\x00{creds.student_id}\x00{creds.password}".encode()
    mac = _keyed(secret_key).copy()  # the key's pads hashed once, not per request
    mac.update(message)
    return mac.digest()


def _keyed(secret_key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 that has taken in the key and nothing else (copy it, then update)."""
    keyed = _KEYED.get(secret_key)
    if keyed is None:
        keyed = _KEYED[secret_key] = hmac.new(secret_key, digestmod="sha256")
    return keyed


def pseudonym(secret_key: bytes, student_id: str) -> str:
    """A student's name in logs: the same for every line of one student, useless without
    the key (student numbers are few enough to try them all against a plain hash)."""
    mac = _keyed(secret_key).copy()
    mac.update(b"jnufm log pseudonym\x00" + student_id.encode())
    return mac.hexdigest()[:12]


# HMAC-SHA256 objects that have taken in a key and nothing else, by key.
_KEYED: dict[bytes, hmac.HMAC] = {}

"""What a watch tells a student, and how it is kept: the kinds, the channels, a Notice
(one event, in Chinese first, with its facts), sealed for the outbox and the watch's
target sealed for the watches table."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Final, Literal

from services.vault import SessionVault

Kind = Literal["card_transaction", "low_balance", "grade", "exam_soon", "timetable_change"]
KINDS: Final[tuple[Kind, ...]] = (
    "card_transaction",
    "low_balance",
    "grade",
    "exam_soon",
    "timetable_change",
)
# The school system each kind asks.
KIND_SYSTEM: Final[dict[Kind, str]] = {
    "card_transaction": "card",
    "low_balance": "card",
    "grade": "academic",
    "exam_soon": "academic",
    "timetable_change": "academic",
}
Channel = Literal["webhook", "email", "wechat"]
CHANNELS: Final[tuple[Channel, ...]] = ("webhook", "email", "wechat")

_SEALED_AS: Final = "watch"


def event_key(watch_id: int, kind: str, fact: str) -> str:
    """The event's idempotency key: the same fact seen twice (two workers, a poll
    repeated after a crash) is the same key, so the same message."""
    return hashlib.sha256(f"{watch_id}\x00{kind}\x00{fact}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Notice:
    """One event of one watch, as every channel says it."""

    event_key: str
    watch_id: int
    student_id: str
    kind: Kind
    title: str  # Chinese: "校园卡消费提醒"
    text: str  # Chinese, with the facts
    text_en: str
    # The facts, as strings: amount, place, time; course, score; ...
    facts: dict[str, str] = field(default_factory=dict)
    # When the change was seen (ISO 8601, China time).
    seen_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Notice:
        data = json.loads(text)
        return cls(**data)


def seal_notice(vault: SessionVault, notice: Notice) -> str:
    """The notice sealed for its outbox row (bound to its watch)."""
    return vault.seal(str(notice.watch_id), _SEALED_AS, notice.to_json(), "notice")


def open_notice(vault: SessionVault, watch_id: int, sealed: str) -> Notice | None:
    """The notice of an outbox row; None if it cannot be opened (another key)."""
    text = vault.open(str(watch_id), _SEALED_AS, sealed, "notice")
    return None if text is None else Notice.from_json(text)


def seal_field(vault: SessionVault, student_id: str, purpose: str, value: str) -> str:
    """A watch's target ("target") or webhook secret ("secret"), sealed for its student."""
    return vault.seal(student_id, _SEALED_AS, value, purpose)


def open_field(vault: SessionVault, student_id: str, purpose: str, sealed: str) -> str | None:
    return vault.open(student_id, _SEALED_AS, sealed, purpose)

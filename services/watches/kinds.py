"""Each kind of watch: what its poll asks the school, what it keeps of the answer (the
state, small and JSON-able), and the events between the state before and after.

Pure: no I/O, no clock (the poll's time is given). The scheduler asks (QUESTION names
the service call) and hands the answer to `step`, which returns the new state and the
notices to write. A first poll (no state before) sets the baseline and tells nothing.

    card_transaction  today's transactions          {"day", "seen": [identity, ...]}
    low_balance       the account page's balance    {"balance", "below", "crossings"}
    grade             the current term's grades     {"term", "grades": {course: score}}
    exam_soon         the current term's exams      {"term", "announced": [identity, ...]}
    timetable_change  the current term's timetable  {"term", "digest", "courses": {...}}

Each event's key is notices.event_key(watch, kind, fact), the fact naming the change
itself (a transaction's identity, the n-th time below the threshold, a course and its
score, an exam, the new timetable's digest): two polls that see the same change write
the same key, so one message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from services.campus import CHINA
from services.watches.notices import Kind, Notice, event_key
from systems.academic.models import Course, Exam, Grade, Timetable
from systems.card.models import AccountInfo, Transaction

State = dict[str, Any]

# The service call each kind's poll makes (systems/<system>/service.py), and the school
# pages it costs at most: its page, and a login when the stored school session cannot
# be used. The scheduler charges this to the watches' ceiling before it asks.
QUESTION: Final[dict[Kind, str]] = {
    "card_transaction": "card.today_transactions",
    "low_balance": "card.balance",
    "grade": "academic.grades",
    "exam_soon": "academic.exams",
    "timetable_change": "academic.timetable",
}
SCHOOL_REQUESTS: Final[dict[Kind, int]] = {
    "card_transaction": 2,
    "low_balance": 2,
    "grade": 2,
    "exam_soon": 2,
    "timetable_change": 2,
}

# exam_soon's window, hours (param), and low_balance's threshold, yuan.
MAX_HOURS: Final = 24 * 30
MAX_THRESHOLD: Final = Decimal(100000)
# A digest kept for each course of a timetable: this many hex digits.
COURSE_DIGEST: Final = 16


class BadParam(ValueError):
    """A watch's param that does not suit its kind (the message says what would)."""


@dataclass(frozen=True, slots=True)
class WatchRef:
    """What `step` must know of a watch."""

    id: int
    student_id: str
    kind: Kind
    param: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """A poll's outcome: the state to keep and the events it revealed."""

    state: State
    notices: tuple[Notice, ...]


def check_param(kind: Kind, param: str) -> str:
    """The param in its kept form ("20.00", "24"; "" for kinds without one). Raises BadParam."""
    text = param.strip()
    if kind == "low_balance":
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise BadParam("threshold must be an amount of yuan, e.g. 20 or 15.50") from None
        if not value.is_finite() or not 0 < value <= MAX_THRESHOLD:
            raise BadParam(f"threshold must be more than 0 and at most {MAX_THRESHOLD} yuan")
        return str(value.quantize(Decimal("0.01")))
    if kind == "exam_soon":
        if not text.isdigit() or not 1 <= int(text) <= MAX_HOURS:
            raise BadParam(f"hours must be a whole number from 1 to {MAX_HOURS}")
        return str(int(text))
    if text:
        raise BadParam(f"a {kind} watch takes no param")
    return ""


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:COURSE_DIGEST]


def _when(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def _notice(
    watch: WatchRef,
    fact: str,
    title: str,
    text: str,
    text_en: str,
    facts: dict[str, str],
    now: datetime,
) -> Notice:
    return Notice(
        event_key=event_key(watch.id, watch.kind, fact),
        watch_id=watch.id,
        student_id=watch.student_id,
        kind=watch.kind,
        title=title,
        text=text,
        text_en=text_en,
        facts=facts,
        seen_at=now.astimezone(CHINA).isoformat(timespec="seconds"),
    )


# card_transaction ------------------------------------------------------------------------


def transaction_identity(row: Transaction) -> str:
    """A transaction's identity, stable across polls (the card center gives rows no id)."""
    return _short(
        f"{row.time.isoformat()}|{row.way}|{row.position}|{row.amount}|{row.balance_after}"
    )


def card_transactions(
    watch: WatchRef, old: State | None, rows: Sequence[Transaction], day: str, now: datetime
) -> Step:
    """Each of today's transactions not seen before (today: `day`, the card center's)."""
    seen_before = set(old.get("seen", [])) if old is not None and old.get("day") == day else set()
    notices = []
    ids = []
    for row in sorted(rows, key=lambda r: r.time):
        identity = transaction_identity(row)
        ids.append(identity)
        if old is None or identity in seen_before:
            continue
        amount = f"{abs(row.amount):.2f}"
        spent = row.amount < 0
        moment = _when(row.time)
        verb, verb_en = ("消费", "spent") if spent else ("入账", "received")
        notices.append(
            _notice(
                watch,
                f"{day}|{identity}",
                "校园卡消费提醒" if spent else "校园卡入账提醒",
                f"{moment} 在{row.position}{verb} {amount} 元，余额 {row.balance_after:.2f} 元。",
                f"{moment}: {verb_en} {amount} yuan at {row.position}; "
                f"balance {row.balance_after:.2f} yuan.",
                {
                    "amount": f"{row.amount:.2f}",
                    "place": row.position,
                    "time": row.time.astimezone(CHINA).isoformat(timespec="seconds"),
                    "way": row.way,
                    "balance": f"{row.balance_after:.2f}",
                },
                now,
            )
        )
    return Step({"day": day, "seen": sorted(set(ids))}, tuple(notices))


# low_balance ---------------------------------------------------------------------------------


def low_balance(watch: WatchRef, old: State | None, account: AccountInfo, now: datetime) -> Step:
    """Once when the balance goes below the threshold; again only after it went back above."""
    threshold = Decimal(watch.param)
    balance = account.balance
    below = balance < threshold
    was_below = bool(old.get("below")) if old is not None else below
    crossings = int(old.get("crossings", 0)) if old is not None else 0
    notices: tuple[Notice, ...] = ()
    if below and not was_below:
        crossings += 1
        notices = (
            _notice(
                watch,
                f"below|{crossings}",
                "校园卡余额不足提醒",
                f"校园卡余额 {balance:.2f} 元，低于 {threshold:.2f} 元，请及时充值。",
                f"Your campus card balance is {balance:.2f} yuan, below {threshold:.2f} yuan.",
                {"balance": f"{balance:.2f}", "threshold": f"{threshold:.2f}"},
                now,
            ),
        )
    state = {"balance": f"{balance:.2f}", "below": below, "crossings": crossings}
    return Step(state, notices)


# grade ------------------------------------------------------------------------------------------


def _course_key(grade: Grade) -> str:
    return grade.code or grade.name


def grades(
    watch: WatchRef, old: State | None, rows: Sequence[Grade], term: str, now: datetime
) -> Step:
    """A course's grade posted, or changed, this term."""
    before: dict[str, str] = (
        dict(old.get("grades", {})) if old is not None and old.get("term") == term else {}
    )
    baseline = old is None or old.get("term") != term
    kept: dict[str, str] = {}
    notices = []
    for row in rows:
        key = _course_key(row)
        kept[key] = row.score_text
        if baseline or before.get(key) == row.score_text:
            continue
        changed = key in before
        notices.append(
            _notice(
                watch,
                f"{term}|{key}|{row.score_text}",
                "成绩更新提醒" if changed else "新成绩提醒",
                f"{row.name}（{term}）成绩{'更新为' if changed else '已公布：'} {row.score_text}。",
                f"{row.name} ({term}): grade {'changed to' if changed else 'posted,'} "
                f"{row.score_text}.",
                {
                    "course": row.name,
                    "code": row.code,
                    "score": row.score_text,
                    "term": term,
                    **({"previous": before[key]} if changed else {}),
                },
                now,
            )
        )
    return Step({"term": term, "grades": kept}, tuple(notices))


# exam_soon ----------------------------------------------------------------------------------------


def exam_identity(exam: Exam) -> str:
    return _short(f"{exam.course_id}|{exam.date}|{exam.start}|{exam.end}|{exam.place}")


def exams_soon(
    watch: WatchRef, old: State | None, rows: Sequence[Exam], term: str, now: datetime
) -> Step:
    """Once per exam, when it starts within `param` hours from now."""
    window = timedelta(hours=int(watch.param))
    baseline = old is None
    announced = set(old.get("announced", [])) if old is not None else set()
    keep = []
    notices = []
    for exam in sorted(rows, key=lambda e: e.starts_at):
        identity = exam_identity(exam)
        if not now <= exam.starts_at <= now + window:
            if identity in announced:
                keep.append(identity)
            continue
        keep.append(identity)
        if baseline or identity in announced:
            continue
        start = _when(exam.starts_at)
        end = exam.ends_at.astimezone(CHINA).strftime("%H:%M")
        notices.append(
            _notice(
                watch,
                f"{term}|{identity}",
                "考试提醒",
                f"{exam.course_name} 考试：{start}-{end}，地点 {exam.place}。",
                f"Exam of {exam.course_name}: {start}-{end}, at {exam.place}.",
                {
                    "course": exam.course_name,
                    "code": exam.course_id,
                    "start": exam.starts_at.isoformat(timespec="minutes"),
                    "end": exam.ends_at.isoformat(timespec="minutes"),
                    "place": exam.place,
                },
                now,
            )
        )
    return Step({"term": term, "announced": sorted(set(keep))}, tuple(notices))


# timetable_change --------------------------------------------------------------------------------


def _course_id(course: Course) -> str:
    return f"{course.course_id}|{course.class_id}"


def _course_digest(course: Course) -> str:
    return _short(json.dumps(asdict(course), default=str, sort_keys=True, ensure_ascii=False))


def timetable(
    watch: WatchRef, old: State | None, table: Timetable, term: str, now: datetime
) -> Step:
    """One event per change of the term's timetable: the courses added, removed, changed."""
    courses = {_course_id(c): _course_digest(c) for c in table.courses}
    names = {_course_id(c): c.name for c in table.courses}
    digest = _short(json.dumps(courses, sort_keys=True))
    state: State = {"term": term, "digest": digest, "courses": courses, "names": names}
    if old is None or old.get("term") != term or old.get("digest") == digest:
        return Step(state, ())
    before: dict[str, str] = dict(old.get("courses", {}))
    old_names: dict[str, str] = dict(old.get("names", {}))
    added = sorted(names[k] for k in courses if k not in before)
    removed = sorted(old_names.get(k, k) for k in before if k not in courses)
    changed = sorted(names[k] for k in courses if k in before and before[k] != courses[k])
    parts_zh = [
        f"{label}：{'、'.join(items)}"
        for label, items in (("新增", added), ("取消", removed), ("变动", changed))
        if items
    ]
    parts_en = [
        f"{label}: {', '.join(items)}"
        for label, items in (("added", added), ("removed", removed), ("changed", changed))
        if items
    ]
    notice = _notice(
        watch,
        f"{term}|{digest}",
        "课表变动提醒",
        f"{term} 学期课表有变动。{'；'.join(parts_zh)}。",
        f"Your timetable of {term} changed. {'; '.join(parts_en)}.",
        {
            "term": term,
            "added": "、".join(added),
            "removed": "、".join(removed),
            "changed": "、".join(changed),
        },
        now,
    )
    return Step(state, (notice,))

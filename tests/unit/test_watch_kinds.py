"""Each watch kind's state and events (services/watches/kinds.py), and what a new watch
may be made with (services/watches/store.py check_target)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from services.campus import CHINA
from services.errors import BadInput
from services.watches import kinds
from services.watches.kinds import BadParam, WatchRef, check_param
from services.watches.notices import Kind, event_key
from services.watches.store import check_target
from systems.academic.models import Course, Exam, Grade, Meeting, Timetable
from systems.card.models import AccountInfo, Transaction

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 12:00 in China
DAY = "2026-12-07"


def ref(kind: Kind, param: str = "") -> WatchRef:
    return WatchRef(7, "2012052690", kind, param)


def row(minute: int, amount: str, place: str = "第一饭堂", after: str = "100.00") -> Transaction:
    moment = datetime(2026, 12, 7, 11, minute, tzinfo=CHINA)
    return Transaction(moment, "消费", place, Decimal(amount), Decimal(after))


def account(balance: str) -> AccountInfo:
    return AccountInfo("2012052690", "张三", "1", "", "", "", Decimal(balance), ())


def grade(code: str, score: str, name: str = "高等数学") -> Grade:
    value = Decimal(score) if score.isdigit() else None
    return Grade(code, name, "必修", score, value, Decimal(3), None, "")


def exam(day: date, hour: int, place: str = "教学楼101") -> Exam:
    return Exam(day, time(hour, 0), time(hour + 2, 0), place, "线性代数", "0801")


def course(course_id: str, place: str) -> Course:
    meeting = Meeting((1, 2), 1, (1, 2), place, "周一 - 1,2节")
    return Course(
        course_id, f"课程{course_id}", "A1", Decimal(2), "必修", "李老师", "周一", place,
        (meeting,), (), "", "考试", "",
    )  # fmt: skip


def test_a_first_poll_sets_the_baseline_and_tells_nothing() -> None:
    assert (
        kinds.card_transactions(ref("card_transaction"), None, [row(1, "-5")], DAY, NOW).notices
        == ()
    )
    assert kinds.low_balance(ref("low_balance", "20.00"), None, account("3.00"), NOW).notices == ()
    assert kinds.grades(ref("grade"), None, [grade("01", "80")], "2026-1", NOW).notices == ()
    soon = [exam(date(2026, 12, 7), 15)]
    assert kinds.exams_soon(ref("exam_soon", "24"), None, soon, "2026-1", NOW).notices == ()
    table = Timetable(2026, 1, (course("01", "A101"),))
    assert kinds.timetable(ref("timetable_change"), None, table, "2026-1", NOW).notices == ()


def test_each_new_transaction_is_one_event_with_its_facts_and_never_two() -> None:
    watch = ref("card_transaction")
    first = kinds.card_transactions(watch, None, [row(1, "-5.50")], DAY, NOW)
    rows = [row(1, "-5.50"), row(20, "-12.00", "第二饭堂", "88.00")]
    second = kinds.card_transactions(watch, first.state, rows, DAY, NOW)
    assert len(second.notices) == 1
    notice = second.notices[0]
    assert "第二饭堂" in notice.text and "12.00" in notice.text and "11:20" in notice.text
    assert notice.facts["amount"] == "-12.00" and notice.facts["place"] == "第二饭堂"
    assert notice.text_en and notice.title == "校园卡消费提醒"
    assert kinds.card_transactions(watch, second.state, rows, DAY, NOW).notices == ()
    # The same change seen by another poll from the same state is the same event.
    again = kinds.card_transactions(watch, first.state, rows, DAY, NOW)
    assert again.notices[0].event_key == notice.event_key
    json.dumps(second.state)  # kept as JSON


def test_a_new_day_forgets_yesterdays_transactions() -> None:
    watch = ref("card_transaction")
    first = kinds.card_transactions(watch, None, [row(1, "-5")], "2026-12-06", NOW)
    assert len(kinds.card_transactions(watch, first.state, [row(1, "-5")], DAY, NOW).notices) == 1


def test_low_balance_fires_once_below_and_again_only_after_going_above() -> None:
    watch = ref("low_balance", "20.00")
    state = kinds.low_balance(watch, None, account("50.00"), NOW).state
    below = kinds.low_balance(watch, state, account("12.00"), NOW)
    assert len(below.notices) == 1
    assert "12.00" in below.notices[0].text and "20.00" in below.notices[0].text
    still = kinds.low_balance(watch, below.state, account("8.00"), NOW)
    assert still.notices == ()
    above = kinds.low_balance(watch, still.state, account("80.00"), NOW)
    assert above.notices == ()
    again = kinds.low_balance(watch, above.state, account("1.00"), NOW)
    assert len(again.notices) == 1
    assert again.notices[0].event_key != below.notices[0].event_key


def test_a_balance_below_at_the_first_poll_fires_only_after_going_above() -> None:
    watch = ref("low_balance", "20.00")
    state = kinds.low_balance(watch, None, account("5.00"), NOW).state
    assert kinds.low_balance(watch, state, account("4.00"), NOW).notices == ()


def test_a_grade_posted_or_changed_is_an_event() -> None:
    watch = ref("grade")
    first = kinds.grades(watch, None, [grade("01", "80")], "2026-1", NOW)
    posted = kinds.grades(
        watch, first.state, [grade("01", "80"), grade("02", "91", "大学物理")], "2026-1", NOW
    )
    assert [n.facts["course"] for n in posted.notices] == ["大学物理"]
    assert "91" in posted.notices[0].text
    changed = kinds.grades(
        watch, posted.state, [grade("01", "85"), grade("02", "91", "大学物理")], "2026-1", NOW
    )
    assert [(n.facts["score"], n.facts["previous"]) for n in changed.notices] == [("85", "80")]
    assert kinds.grades(watch, changed.state, [grade("01", "85")], "2026-1", NOW).notices == ()


def test_another_term_is_a_new_baseline() -> None:
    watch = ref("grade")
    first = kinds.grades(watch, None, [grade("01", "80")], "2026-1", NOW)
    assert kinds.grades(watch, first.state, [grade("09", "70")], "2026-2", NOW).notices == ()


def test_an_exam_is_told_once_when_it_enters_the_window() -> None:
    watch = ref("exam_soon", "24")
    later = exam(date(2026, 12, 10), 9)
    first = kinds.exams_soon(watch, None, [later], "2026-1", NOW)
    soon = exam(date(2026, 12, 7), 15, "第二教学楼305")
    added = kinds.exams_soon(watch, first.state, [later, soon], "2026-1", NOW)
    assert len(added.notices) == 1
    assert "第二教学楼305" in added.notices[0].text and "15:00" in added.notices[0].text
    assert kinds.exams_soon(watch, added.state, [later, soon], "2026-1", NOW).notices == ()
    # Days later, the other exam enters the window in its turn.
    then = NOW + timedelta(days=2, hours=12)
    entered = kinds.exams_soon(watch, added.state, [later, soon], "2026-1", then)
    assert [n.facts["start"][:10] for n in entered.notices] == ["2026-12-10"]


def test_a_timetable_change_is_one_event_naming_the_course() -> None:
    watch = ref("timetable_change")
    before = Timetable(2026, 1, (course("01", "A101"), course("02", "B202")))
    first = kinds.timetable(watch, None, before, "2026-1", NOW)
    after = Timetable(2026, 1, (course("01", "C303"), course("02", "B202")))
    changed = kinds.timetable(watch, first.state, after, "2026-1", NOW)
    assert len(changed.notices) == 1
    assert "课程01" in changed.notices[0].text and changed.notices[0].facts["changed"] == "课程01"
    assert kinds.timetable(watch, changed.state, after, "2026-1", NOW).notices == ()


def test_event_keys_are_notices_event_keys() -> None:
    watch = ref("low_balance", "20.00")
    state = kinds.low_balance(watch, None, account("50.00"), NOW).state
    notice = kinds.low_balance(watch, state, account("1.00"), NOW).notices[0]
    assert notice.event_key == event_key(7, "low_balance", "below|1")


@pytest.mark.parametrize(
    ("kind", "param", "kept"),
    [
        ("low_balance", "20", "20.00"),
        ("low_balance", " 15.5 ", "15.50"),
        ("exam_soon", "48", "48"),
        ("grade", "", ""),
    ],
)
def test_params_are_kept_in_one_form(kind: Kind, param: str, kept: str) -> None:
    assert check_param(kind, param) == kept


@pytest.mark.parametrize(
    ("kind", "param"),
    [
        ("low_balance", ""),
        ("low_balance", "-3"),
        ("low_balance", "abc"),
        ("low_balance", "NaN"),
        ("exam_soon", "0"),
        ("exam_soon", "1.5"),
        ("exam_soon", "99999"),
        ("grade", "3"),
    ],
)
def test_params_that_do_not_suit_the_kind_are_refused(kind: Kind, param: str) -> None:
    with pytest.raises(BadParam):
        check_param(kind, param)


@pytest.mark.parametrize(
    ("channel", "target"),
    [
        ("webhook", "https://example.com/hook"),
        ("webhook", "https://8.8.8.8:8443/x"),
        ("email", "student@example.edu.cn"),
    ],
)
def test_targets_that_may_be_used(channel: str, target: str) -> None:
    assert check_target(channel, target, allow_private=False) == target


@pytest.mark.parametrize(
    ("channel", "target", "code"),
    [
        ("webhook", "http://example.com/hook", "invalid_target"),
        ("webhook", "https://127.0.0.1/hook", "invalid_target"),
        ("webhook", "https://localhost/hook", "invalid_target"),
        ("webhook", "https://10.0.0.5/hook", "invalid_target"),
        ("webhook", "https://[::1]/hook", "invalid_target"),
        ("webhook", "https://intranet/hook", "invalid_target"),
        ("webhook", "https://user:pw@example.com/", "invalid_target"),
        ("webhook", "ftp://example.com/", "invalid_target"),
        ("email", "not an address", "invalid_target"),
        ("wechat", "oABC", "invalid_channel"),
        ("sms", "123", "invalid_channel"),
    ],
)
def test_targets_that_are_refused(channel: str, target: str, code: str) -> None:
    with pytest.raises(BadInput) as refused:
        check_target(channel, target, allow_private=False)
    assert refused.value.code == code


def test_a_private_http_webhook_only_where_allowed() -> None:
    target = "http://127.0.0.1:9000/hook"
    assert check_target("webhook", target, allow_private=True) == target

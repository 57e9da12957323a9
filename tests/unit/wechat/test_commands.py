"""What a follower's message asks: every alias, its tolerated variants, the password
rule, menu keys and events, and that no text makes the parser fail."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.wechat.commands import (
    MAX_DAYS,
    MAX_TEXT_BYTES,
    MENU,
    RECENT_DAYS,
    TRADITIONAL,
    Command,
    MenuKey,
    parse_click,
    parse_event,
    parse_text,
)

# (message, kind, query, days, day)
CASES: list[tuple[str, str, str | None, int | None, str | None]] = [
    # balance, the 2013 words and ours
    ("余额", "balance", None, None, None),
    ("饭卡余额", "balance", None, None, None),
    ("校园卡余额", "balance", None, None, None),
    ("rest", "balance", None, None, None),
    ("yue", "balance", None, None, None),
    ("balance", "balance", None, None, None),
    ("REST", "balance", None, None, None),
    ("ｙｕｅ", "balance", None, None, None),
    ("Ｒｅｓｔ！", "balance", None, None, None),
    ("余 额", "balance", None, None, None),
    ("余额？", "balance", None, None, None),
    ("余额。", "balance", None, None, None),
    ("余额!!", "balance", None, None, None),
    ("\u3000余额\u3000", "balance", None, None, None),
    ("餘額", "balance", None, None, None),
    ("飯卡餘額", "balance", None, None, None),
    ("余额\u200b", "balance", None, None, None),
    ("余\x00额", "balance", None, None, None),
    ("\ufeff余额\r\n", "balance", None, None, None),
    ("balanse", "balance", None, None, None),
    # today's transactions
    ("今日消费记录", "transactions_today", None, None, None),
    ("今日消费", "transactions_today", None, None, None),
    ("饭卡", "transactions_today", None, None, None),
    ("card", "transactions_today", None, None, None),
    ("CARD", "transactions_today", None, None, None),
    ("今日消費記錄", "transactions_today", None, None, None),
    ("cadr", "transactions_today", None, None, None),
    # the last N days
    ("近 7 天消费", "transactions_recent", None, 7, None),
    ("近7天消费", "transactions_recent", None, 7, None),
    ("近７天消费", "transactions_recent", None, 7, None),
    ("最近消费", "transactions_recent", None, RECENT_DAYS, None),
    ("近30天消费", "transactions_recent", None, 30, None),
    ("近1天消费", "transactions_recent", None, 1, None),
    ("近31天消费", "transactions_recent", None, 31, None),
    ("最近3天的消费记录", "transactions_recent", None, 3, None),
    ("近 14 日账单", "transactions_recent", None, 14, None),
    ("近7天消費", "transactions_recent", None, 7, None),
    # timetable
    ("课表", "timetable", None, None, "week"),
    ("kebiao", "timetable", None, None, "week"),
    ("KeBiao", "timetable", None, None, "week"),
    ("kebio", "timetable", None, None, "week"),
    ("kebaio", "timetable", None, None, "week"),
    ("kebiaoo", "timetable", None, None, "week"),
    ("課表", "timetable", None, None, "week"),
    ("今天", "timetable", None, None, "today"),
    ("今天课表", "timetable", None, None, "today"),
    ("今天的课", "timetable", None, None, "today"),
    ("今天有什么课？", "timetable", None, None, "today"),
    ("明天", "timetable", None, None, "tomorrow"),
    ("明天的课", "timetable", None, None, "tomorrow"),
    ("明天課表", "timetable", None, None, "tomorrow"),
    ("本周", "timetable", None, None, "week"),
    ("本周课表", "timetable", None, None, "week"),
    ("这周课表", "timetable", None, None, "week"),
    ("這週課表", "timetable", None, None, "week"),
    ("下周课表", "timetable", None, None, "next_week"),
    ("下星期的课", "timetable", None, None, "next_week"),
    ("课表 明天", "timetable", None, None, "tomorrow"),
    ("kebiao tomorrow", "timetable", None, None, "tomorrow"),
    # exams and grades
    ("考试", "exams", None, None, None),
    ("考試", "exams", None, None, None),
    ("exam", "exams", None, None, None),
    ("Exams?", "exams", None, None, None),
    ("kaoshi", "exams", None, None, None),
    ("exma", "exams", None, None, None),
    ("成绩", "grades", None, None, None),
    ("成績", "grades", None, None, None),
    ("grades", "grades", None, None, None),
    ("chengji", "grades", None, None, None),
    ("grdes", "grades", None, None, None),
    # the library
    ("图书 红楼梦", "book_search", "红楼梦", None, None),
    ("图书红楼梦", "book_search", "红楼梦", None, None),
    ("圖書 紅樓夢", "book_search", "紅樓夢", None, None),
    ("book Python", "book_search", "Python", None, None),
    ("BOOK  Python   3 ", "book_search", "Python 3", None, None),
    ("ｂｏｏｋ　Ｐｙｔｈｏｎ", "book_search", "Python", None, None),
    ("boook python", "book_search", "python", None, None),
    ("图书 C++", "book_search", "C++", None, None),
    ("图书 什么是数学？", "book_search", "什么是数学", None, None),
    ("图书", "book_prompt", None, None, None),
    ("圖書", "book_prompt", None, None, None),
    ("book", "book_prompt", None, None, None),
    ("图书？", "book_prompt", None, None, None),
    # help, version, binding
    ("帮助", "help", None, None, None),
    ("幫助", "help", None, None, None),
    ("help", "help", None, None, None),
    ("HELP!", "help", None, None, None),
    ("hlep", "help", None, None, None),
    ("hepl", "help", None, None, None),
    ("?", "help", None, None, None),
    ("？", "help", None, None, None),
    ("version", "version", None, None, None),
    ("版本", "version", None, None, None),
    ("verison", "version", None, None, None),
    ("绑定", "bind", None, None, None),
    ("綁定", "bind", None, None, None),
    ("bind", "bind", None, None, None),
    ("解绑", "unbind", None, None, None),
    ("解綁", "unbind", None, None, None),
    ("unbind", "unbind", None, None, None),
    ("unbidn", "unbind", None, None, None),
]


@pytest.mark.parametrize(("text", "kind", "query", "days", "day"), CASES)
def test_each_alias_reads_as_its_command(
    text: str, kind: str, query: str | None, days: int | None, day: str | None
) -> None:
    command = parse_text(text)
    assert (command.kind, command.query, command.days, command.day) == (kind, query, days, day)
    assert command.recognised
    assert command.original == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "你好",
        "hello world",
        "xyz",
        "2010204060",  # a student number alone is no secret, and asks nothing
        "近0天消费",
        "近32天消费",
        "近365天消费",
        "今天天气怎么样",
        "kbo",  # under 4 letters: no misspelling is read
        "yeu",
    ],
)
def test_anything_else_is_help_not_understood_and_keeps_its_text(text: str) -> None:
    command = parse_text(text)
    assert command == Command("help", original=text, recognised=False)


def test_a_misspelling_one_edit_from_two_commands_reads_as_neither() -> None:
    # "ubind" is one edit from "bind" and from "unbind".
    assert parse_text("ubind") == Command("help", original="ubind", recognised=False)
    # One edit from two aliases of one command ("exam", "exams") is that command.
    assert parse_text("exas").kind == "exams"


def test_an_empty_message_is_help() -> None:
    assert parse_text("") == Command("help", original="", recognised=True)
    assert parse_text(" \u3000\t\n").kind == "help"


def test_a_message_longer_than_wechat_allows_is_help() -> None:
    at_limit = "余" * (MAX_TEXT_BYTES // 3)
    over = "余额" + "额" * (MAX_TEXT_BYTES // 3)
    assert parse_text(at_limit).kind == "help"  # within the limit, but no command
    # Unread, so not known to be free of a password: not kept.
    assert parse_text(over) == Command("help", original="", recognised=False)
    assert parse_text("2010204060 052690 " * 200) == Command("help", recognised=False)
    assert parse_text("a" * 100_000).kind == "help"


def test_a_book_query_of_the_longest_message_is_kept_whole() -> None:
    query = "数" * ((MAX_TEXT_BYTES - len("图书 ".encode())) // 3)
    command = parse_text("图书 " + query)
    assert command.kind == "book_search"
    assert command.query == query


@pytest.mark.parametrize(
    "text",
    [
        "052690",
        "０５２６９０",
        " 052690 ",
        "052 690",
        "2010204060 052690",
        "2010204060052690",
        "2010204060/052690",
        "2010204060，052690",
        "绑定 2010204060 052690",
        "綁定 2010204060 052690",
        "bind 2010204060 052690",
        "绑定2010204060",
        "绑定 abc",
        "密码 hunter2",
        "密码是 123",
        "password: hunter22",
        "pw 1234",
        "学号 2010204060 密码 052690",
        "2010204060 abc123",
        "2010204060 Pa55word",
        "余额 052690",
        "图书 052690",
        "book 2010204060 x1y2z3",
        "Pa55word",
        "abc123",
        "Zx9!Zx9!",
    ],
)
def test_a_password_is_never_taken_nor_kept(text: str) -> None:
    command = parse_text(text)
    assert command == Command("looks_like_password")
    assert command.original == ""


@pytest.mark.parametrize(
    "text",
    ["图书 9787020002207", "近7天消费", "2010204060", "图书 python3", "book abc"],
)
def test_numbers_that_are_no_password(text: str) -> None:
    assert parse_text(text).kind != "looks_like_password"


def test_the_traditional_table_maps_one_character_to_one() -> None:
    assert all(len(k) == 1 and len(v) == 1 and k != v for k, v in TRADITIONAL.items())


@pytest.mark.parametrize("key", list(MenuKey))
def test_every_menu_key_has_its_command(key: MenuKey) -> None:
    assert parse_click(key.value) == MENU[key]
    assert parse_event("CLICK", key.value) == MENU[key]
    assert MENU[key].recognised


@pytest.mark.parametrize(
    ("key", "kind", "days", "day"),
    [
        ("BALANCE", "balance", None, None),
        ("TODAY", "transactions_today", None, None),
        ("SPENDING_7D", "transactions_recent", 7, None),
        ("TIMETABLE_TODAY", "timetable", None, "today"),
        ("TIMETABLE_TOMORROW", "timetable", None, "tomorrow"),
        ("TIMETABLE_WEEK", "timetable", None, "week"),
        ("EXAMS", "exams", None, None),
        ("GRADES", "grades", None, None),
        ("BOOK", "book_prompt", None, None),
        ("BIND", "bind", None, None),
        ("UNBIND", "unbind", None, None),
        ("HELP", "help", None, None),
    ],
)
def test_menu_keys_read_as_the_text_commands(
    key: str, kind: str, days: int | None, day: str | None
) -> None:
    command = parse_click(key)
    assert (command.kind, command.days, command.day) == (kind, days, day)


@pytest.mark.parametrize("key", ["", "balance", "NOPE", "BALANCE2", "\x00"])
def test_an_unknown_menu_key_is_help(key: str) -> None:
    assert parse_click(key) == Command("help", recognised=False)


def test_subscribe_is_welcome_and_other_events_need_no_answer() -> None:
    assert parse_event("subscribe") == Command("welcome")
    assert parse_event("click", None) == Command("help", recognised=False)
    for event in ("unsubscribe", "VIEW", "LOCATION", "SCAN", ""):
        assert parse_event(event, "BALANCE") is None


WHITESPACE = st.text(alphabet=" \t\n\r\u3000\u00a0\u2003", max_size=5)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_parse_never_raises_and_ignores_surrounding_whitespace(text: str) -> None:
    command = parse_text(text)
    assert isinstance(command, Command)
    assert parse_text(" " + text + "\u3000\n") == command
    if command.original:
        assert parse_text(command.original) == command


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec=None, categories=None), max_size=100))
def test_parse_never_raises_on_lone_surrogates_and_unassigned_characters(text: str) -> None:
    assert isinstance(parse_text(text), Command)
    assert isinstance(parse_text("图书 " + text), Command)


def test_a_lone_surrogate_is_dropped() -> None:
    assert parse_text("\ud800余额\udfff").kind == "balance"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([text for text, *_ in CASES]),
    WHITESPACE,
    WHITESPACE,
)
def test_known_commands_are_idempotent_under_surrounding_whitespace(
    text: str, before: str, after: str
) -> None:
    assert parse_text(before + text + after) == parse_text(text)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[0-9]{6,16}[ /,]+[0-9]{6}", fullmatch=True))
def test_any_student_number_and_card_password_is_refused(text: str) -> None:
    assert parse_text(text) == Command("looks_like_password")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_parse_click_and_event_never_raise(event: str, key: str) -> None:
    assert parse_click(key).kind in {command.kind for command in MENU.values()}
    result = parse_event(event, key)
    assert result is None or isinstance(result, Command)


def test_days_bounds_are_the_documented_ones() -> None:
    assert parse_text(f"近{MAX_DAYS}天消费").days == MAX_DAYS
    assert parse_text(f"近{MAX_DAYS + 1}天消费").kind == "help"


@pytest.mark.parametrize(
    ("text", "watch", "param"),
    [
        ("消费提醒", "card_transaction", ""),
        ("余额提醒 20", "low_balance", "20"),
        ("余额低于20元提醒", "low_balance", "20"),
        ("余额提醒", "low_balance", ""),
        ("开启成绩提醒", "grade", ""),
        ("考试提醒 48小时", "exam_soon", "48"),
        ("调课提醒", "timetable_change", ""),
        ("課表提醒", "timetable_change", ""),
    ],
)
def test_a_watch_is_asked_for_in_chat(text: str, watch: str, param: str) -> None:
    command = parse_text(text)
    assert (command.kind, command.watch, command.param) == ("watch", watch, param)


def test_watches_are_listed_and_cancelled_and_a_password_is_still_refused() -> None:
    assert parse_text("我的提醒").kind == "watches"
    assert parse_text("取消提醒").kind == "unwatch"
    assert parse_text("余额提醒 052690").kind == "looks_like_password"

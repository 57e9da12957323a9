"""The Chinese answers: what a follower reads for each question, built from the
project's own models, and the WeChat byte limit on every text."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.wechat import replies
from channels.wechat.commands import parse_text
from channels.wechat.replies import (
    MAX_TEXT_BYTES,
    MORE_HINT,
    Stale,
    balance_text,
    books_news,
    books_text,
    exams_text,
    fit,
    grades_text,
    help_text,
    term_day,
    timetable_days,
    timetable_text,
    transactions_text,
)
from services import codes
from services.campus import CHINA, CampusCalendar, Term
from services.errors import InvalidPassword, SchoolBusy
from settings import CampusCalendarSettings
from systems.academic.models import Course, Exam, Grade, Meeting, Timetable
from systems.card.models import Transaction
from systems.library.models import BookBrief, Holding
from systems.library.service import decode_book_url

BASE = "https://jnu.example.org"
BIND = "https://jnu.example.org/wechat/bind?t=abc"
# The default campus calendar: 2026-2027 term 1 starts on Monday 2026-09-07, so
# Monday 2026-12-07 is in teaching week 14.
CALENDAR = CampusCalendar(CampusCalendarSettings())
MONDAY = date(2026, 12, 7)


def fits(text: str) -> bool:
    return len(text.encode("utf-8")) <= MAX_TEXT_BYTES


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), CHINA)


def spend(moment: datetime, place: str, amount: str, after: str) -> Transaction:
    way = "持卡人消费" if Decimal(amount) < 0 else "银行转账"
    return Transaction(moment, way, place, Decimal(amount), Decimal(after))


def course(name: str, meetings: tuple[Meeting, ...], unparsed: tuple[str, ...] = ()) -> Course:
    return Course(
        course_id="0101",
        name=name,
        class_id="1",
        credits=Decimal("3.0"),
        category="必修",
        teacher="张老师",
        schedule="①".join(m.text for m in meetings),
        place="①".join(m.place for m in meetings),
        meetings=meetings,
        unparsed=unparsed,
        remarks="",
        stage="",
        exam_time="",
    )


MATHS = course(
    "高等数学",
    (
        Meeting(tuple(range(1, 17)), 1, (3, 4), "教学楼101", "(1-16)周一 - 3,4节"),
        Meeting(tuple(range(2, 17, 2)), 3, (7, 8, 9), "理工楼302", "双周周三 - 7,8,9节"),
    ),
)
ENGLISH = course(
    "大学英语", (Meeting(tuple(range(1, 17, 2)), 2, (1, 2), "外语楼201", "单周周二 - 1,2节"),)
)
SPORT = course("体育", (), unparsed=("周几看心情",))
TIMETABLE = Timetable(2026, 1, (MATHS, ENGLISH, SPORT))


def book(title: str, record: str = "b1234567", available: bool = True) -> BookBrief:
    return BookBrief(
        record_id=record,
        record_url=f"https://lib.example.edu.cn/record={record}",
        title=title,
        author="曹雪芹",
        publisher="人民文学出版社",
        pages="",
        year="1996",
        isbn="978-7-02-000220-7",
        status="",
        holdings=(
            Holding("中文书库", "I242.4/1", "在架" if available else "借出", available, None),
            Holding("中文书库", "I242.4/1", "借出", False, date(2026, 12, 20)),
        ),
        cover_isbn="9787020002207",
    )


# --- shared pieces ------------------------------------------------------------------------


def test_money_has_two_decimals_and_yuan() -> None:
    assert balance_text(Decimal("123.45")) == "您的校园卡余额为 123.45 元。"
    assert "123.46 元" in balance_text(Decimal("123.455"))
    assert "0.00 元" in balance_text(Decimal(0))
    assert "-1.50 元" in balance_text(Decimal("-1.5"))
    assert "1234.50 元" in balance_text(Decimal("1234.5"))


def test_a_stale_answer_says_when_it_was_fetched_in_china_time() -> None:
    fetched = datetime(2026, 12, 7, 4, 3, tzinfo=UTC)  # 12:03 in China
    text = balance_text(Decimal("5"), stale=Stale(fetched, fetched + timedelta(hours=1)))
    assert text.startswith("（学校系统暂时无法访问，以下是 12:03 查询到的结果）")
    assert "5.00 元" in text
    yesterday = balance_text(Decimal("5"), stale=Stale(fetched, fetched + timedelta(days=1)))
    assert "12月7日 12:03" in yesterday


def test_fit_leaves_a_short_text_alone_and_cuts_a_long_one_at_a_line() -> None:
    assert fit("余额") == "余额"
    lines = [f"第 {n} 行：第一饭堂 -5.50 元" for n in range(500)]
    cut = fit("\n".join(lines))
    assert fits(cut)
    assert cut.endswith(MORE_HINT)
    kept = cut.removesuffix("\n" + MORE_HINT).split("\n")
    assert kept == lines[: len(kept)]  # whole lines only


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=5000))
def test_fit_always_holds_the_limit(text: str) -> None:
    cut = fit(text)
    assert fits(cut)
    if len(text.encode("utf-8")) <= MAX_TEXT_BYTES:
        assert cut == text
    else:
        assert cut.endswith(MORE_HINT)


# --- the card center ----------------------------------------------------------------------


def test_todays_transactions_latest_first_with_the_totals() -> None:
    rows = [
        spend(at(MONDAY, 7, 31), "第二饭堂", "-3.00", "120.45"),
        spend(at(MONDAY, 12, 42), "第一饭堂", "-5.50", "117.95"),
        spend(at(MONDAY, 9, 5), "圈存机", "+50.00", "170.45"),
    ]
    text = transactions_text(rows, replies.TODAY_TITLE)
    assert text.splitlines() == [
        "今日消费记录：",
        "共 3 笔，支出 8.50 元，充值 50.00 元；余额 117.95 元。",
        "12:42 第一饭堂 -5.50 元",
        "09:05 圈存机 +50.00 元",
        "07:31 第二饭堂 -3.00 元",
    ]


def test_transactions_of_several_days_show_the_date_in_china_time() -> None:
    late = datetime(2026, 12, 6, 16, 30, tzinfo=UTC)  # 00:30 on the 7th in China
    rows = [
        Transaction(late, "持卡人消费", "", Decimal("-2"), Decimal("10")),
        spend(at(MONDAY - timedelta(days=3), 18, 0), "第三饭堂", "-12.00", "12.00"),
    ]
    text = transactions_text(rows, replies.recent_title(7))
    assert text.splitlines()[0] == "近 7 天消费记录："
    assert "12-07 00:30 持卡人消费 -2.00 元" in text  # no place: its kind
    assert "12-04 18:00 第三饭堂 -12.00 元" in text
    assert "充值" not in text


def test_no_transactions() -> None:
    assert transactions_text([], "今日消费记录") == "今日消费记录：没有记录。"


# --- the academic office ------------------------------------------------------------------


def test_term_day_and_the_days_a_command_asks_for() -> None:
    term = Term(2026, 1)
    assert term_day(MONDAY, term, CALENDAR) == replies.TermDay(term, 14, 1)
    assert term_day(date(2026, 9, 6), term, CALENDAR) == replies.TermDay(term, 0, 7)
    assert term_day(MONDAY, Term(2030, 1), CALENDAR) is None
    sunday = date(2026, 12, 13)
    assert timetable_days("today", sunday) == [sunday]
    assert timetable_days("tomorrow", sunday) == [date(2026, 12, 14)]
    assert timetable_days("week", sunday)[0] == MONDAY
    assert timetable_days("next_week", sunday) == [
        date(2026, 12, 14) + timedelta(days=n) for n in range(7)
    ]


def test_todays_classes_with_their_times_and_places() -> None:
    text = timetable_text(TIMETABLE, "today", MONDAY, CALENDAR)
    assert text.splitlines() == [
        "今天（12月7日 周一，第 14 周）的课：",
        "第3-4节 10:00-11:35 高等数学 @教学楼101",
        "另有 1 门课的上课时间未能识别（体育），请以教务处为准。",
    ]


def test_tomorrows_classes_follow_odd_weeks() -> None:
    # Tuesday of week 14 (even): 大学英语 is taught in odd weeks only.
    text = timetable_text(TIMETABLE, "tomorrow", MONDAY, CALENDAR)
    assert "明天（12月8日 周二，第 14 周）的课：\n没有课。" in text
    week_15 = timetable_text(TIMETABLE, "tomorrow", MONDAY + timedelta(days=7), CALENDAR)
    assert "第1-2节 08:00-09:35 大学英语 @外语楼201" in week_15


def test_this_week_and_next_week() -> None:
    this_week = timetable_text(TIMETABLE, "week", date(2026, 12, 10), CALENDAR)
    assert this_week.splitlines()[:5] == [
        "本周（第 14 周）课表（12月7日—12月13日）：",
        "【12月7日 周一】",
        "第3-4节 10:00-11:35 高等数学 @教学楼101",
        "【12月9日 周三】",
        "第7-9节 15:20-18:05 高等数学 @理工楼302",
    ]
    next_week = timetable_text(TIMETABLE, "next_week", MONDAY, CALENDAR)
    assert next_week.splitlines()[:5] == [
        "下周（第 15 周）课表（12月14日—12月20日）：",
        "【12月14日 周一】",
        "第3-4节 10:00-11:35 高等数学 @教学楼101",
        "【12月15日 周二】",
        "第1-2节 08:00-09:35 大学英语 @外语楼201",
    ]
    assert "理工楼302" not in next_week  # even weeks only


def test_a_week_without_classes_and_before_the_term() -> None:
    holidays = timetable_text(TIMETABLE, "week", date(2027, 2, 1), CALENDAR)
    assert "这一周没有课。" in holidays
    before = timetable_text(TIMETABLE, "today", date(2026, 9, 1), CALENDAR)
    assert before.startswith("今天（9月1日 周二，未开学）的课：\n没有课。")


def test_a_term_the_calendar_does_not_know() -> None:
    text = timetable_text(Timetable(2031, 2, (MATHS,)), "today", MONDAY, CALENDAR)
    assert "不知道 2031-2032 学年第 2 学期从哪天开始" in text


def test_exams_upcoming_first_then_those_over() -> None:
    now = at(MONDAY, 10)
    exams = [
        Exam(date(2027, 1, 12), time(9), time(11), "教学楼101", "高等数学", "0101"),
        Exam(MONDAY, time(14, 30), time(16, 30), "", "线性代数", "0103"),
        Exam(MONDAY + timedelta(days=1), time(9), time(11), "外语楼201", "大学英语", "0102"),
        Exam(MONDAY, time(9), time(11), "理工楼302", "概率论", "0104"),
        Exam(date(2026, 12, 1), time(9), time(11), "", "体育理论", "0105"),
    ]
    assert exams_text(exams, now).splitlines() == [
        "接下来的考试（4 场）：",
        "12月7日 周一 09:00-11:00 概率论 @理工楼302 · 正在进行",
        "12月7日 周一 14:30-16:30 线性代数 · 今天",
        "12月8日 周二 09:00-11:00 大学英语 @外语楼201 · 明天",
        "1月12日 周二 09:00-11:00 高等数学 @教学楼101 · 还有 36 天",
        "已结束（1 场）：",
        "12月1日 体育理论",
    ]
    assert exams_text([], now) == "暂时没有考试安排。"
    assert exams_text(exams[-1:], now).startswith("接下来没有考试了。")


def test_exams_read_now_in_china_time() -> None:
    exam = Exam(MONDAY, time(9), time(11), "", "概率论", "0104")
    evening_before_in_utc = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)  # 23:00 on the 6th
    assert "概率论 · 明天" in exams_text([exam], evening_before_in_utc)


def test_grades_with_failures_and_the_average() -> None:
    grades = [
        Grade("0101", "高等数学", "必修", "95", Decimal(95), Decimal("4.0"), Decimal(16), ""),
        Grade("0102", "体育", "必修", "不及格", None, Decimal("1"), Decimal(0), ""),
        Grade("0103", "写作", "选修", "优秀", None, Decimal("2.5"), None, ""),
    ]
    assert grades_text(grades, gpa=Decimal("3.20")).splitlines() == [
        "成绩（3 门，其中 1 门不及格）：",
        "平均学分绩点：3.20",
        "高等数学 95 · 4 学分",
        "体育 不及格 · 1 学分（不及格）",
        "写作 优秀 · 2.5 学分",
    ]
    assert grades_text([]) == "暂时没有成绩。"


# --- the library --------------------------------------------------------------------------


def test_books_as_news_articles_link_to_the_2013_book_page() -> None:
    articles = books_news([book("红楼梦"), book("红楼梦研究", "b7654321", False)], BASE + "/")
    assert [a.title for a in articles] == ["红楼梦", "红楼梦研究"]
    first = articles[0]
    assert first.url.startswith(BASE + "/web/book?url=")
    token = first.url.split("url=", 1)[1]
    assert decode_book_url(token) == "https://lib.example.edu.cn/record=b1234567"
    assert first.pic_url == BASE + "/isbn/image/9787020002207"
    assert first.description == "曹雪芹 / 人民文学出版社 / 1996 可借 1/2 · 中文书库 I242.4/1"
    assert "可借 0/2" in articles[1].description


def test_books_news_bounds() -> None:
    many = [book(f"书{n}" * 50, f"b{n:07d}") for n in range(20)]
    articles = books_news(many, BASE)
    assert len(articles) == replies.MAX_ARTICLES
    assert all(len(a.title) <= replies.MAX_TITLE_CHARS for a in articles)
    assert all(len(a.description) <= replies.MAX_DESCRIPTION_CHARS for a in articles)
    assert books_news(many, BASE, limit=1)[0].title.startswith("书0")
    assert books_news([], BASE) == []


def test_a_record_url_outside_ascii_still_gets_a_link() -> None:
    odd = BookBrief("", "https://lib.example.edu.cn/search~S1?/t红楼梦", "红楼梦", "", "", "",
                    "", "", "在架", (), "")  # fmt: skip
    (article,) = books_news([odd], BASE)
    decoded = decode_book_url(article.url.split("url=", 1)[1])
    assert decoded == "https://lib.example.edu.cn/search~S1?/t%E7%BA%A2%E6%A5%BC%E6%A2%A6"
    assert article.pic_url == ""
    assert article.description == "在架"


def test_books_as_text_and_none_found() -> None:
    text = books_text([book("红楼梦")], "红楼梦", 12, BASE)
    assert text.splitlines()[:2] == [
        "“红楼梦”的检索结果（共 12 条）：",
        "1. 红楼梦 — 可借 1/2 · 中文书库 I242.4/1",
    ]
    assert text.splitlines()[2].startswith(BASE + "/web/book?url=")
    assert books_text([], "没有的书", 0, BASE) == "没有找到“没有的书”相关的图书，换个关键词试试？"
    assert "图书 红楼梦" in replies.book_prompt_text()


# --- accounts, help and errors --------------------------------------------------------------


def test_help_lists_every_command_chinese_first_aliases_in_brackets() -> None:
    text = help_text()
    for words in (
        "余额（rest / yue）",
        "今日消费记录（card）",
        "近7天消费",
        "课表（kebiao）",
        "今天课表",
        "明天课表",
        "下周课表",
        "考试（exam）",
        "成绩（grade）",
        "图书 书名（book 书名）",
        "绑定（bind）",
        "解绑（unbind）",
        "帮助（help）",
    ):
        assert words in text
    # Each command the help names is read as a command.
    for command in ("余额", "rest", "yue", "card", "近7天消费", "kebiao", "今天课表", "exam"):
        assert parse_text(command).recognised
    assert help_text(recognised=False).startswith("抱歉，没看懂这条消息。\n")


def test_account_texts_carry_the_bind_page() -> None:
    welcome = replies.welcome_text(BIND)
    assert BIND in welcome
    assert help_text() in welcome
    assert BIND in replies.bind_text(BIND)
    assert BIND in replies.not_bound_text(BIND)
    assert BIND in replies.password_refused_text(BIND)
    assert "不在聊天中接收密码" in replies.password_refused_text()
    assert "解除绑定" in replies.unbound_text()
    assert replies.version_text("0.1.0") == "jnu.fm 0.1.0"
    assert "正在" in replies.pending_text()
    assert replies.school_busy_text(90) == "学校系统现在很忙，请 2 分钟后再试。"
    assert replies.school_busy_text() == "学校系统现在很忙，请稍后再试。"


@pytest.mark.parametrize(
    "text",
    [
        "052690",
        "2010204060 052690",
        "绑定 2010204060 052690",
        "密码 hunter22",
        "2010204060 Pa55word",
        "余额 052690",
    ],
)
def test_a_password_sent_by_mistake_is_never_echoed(text: str) -> None:
    command = parse_text(text)
    assert command.kind == "looks_like_password"
    answer = replies.password_refused_text(BIND)
    secrets = [word for word in text.split() if any(ch.isdigit() for ch in word)]
    assert secrets
    for word in secrets:
        assert word not in answer
    assert "052690" not in help_text(recognised=False)


@pytest.mark.parametrize(("name", "error"), sorted(codes.catalogue().items()))
def test_every_error_code_has_a_text_with_the_catalogues_sentence(
    name: str, error: codes.ErrorCode
) -> None:
    text = replies.error_text(error, retry_after_s=30)
    assert fits(text)
    assert f"（{error.when_zh}）" in text
    assert text.split("\n", 1)[0].endswith("。")


def test_error_texts_say_when_to_try_again() -> None:
    assert replies.error_text(codes.SCHOOL_TIMEOUT, 30).startswith(
        "学校系统没有及时回答，请 30 秒后再试。"
    )
    assert replies.error_text(codes.BREAKER_OPEN, 600).startswith(
        "学校系统暂时无法访问，请 10 分钟后再试。"
    )
    assert replies.error_text(codes.TOO_MANY_FAILED_LOGINS, 7200).startswith(
        "密码错误次数太多，暂时不能查询，请 2 小时后再试。"
    )
    assert "重新绑定" in replies.error_text(codes.INVALID_CREDENTIALS)
    assert "再试" not in replies.error_text(codes.INVALID_QUERY, 30)


def test_a_service_error_is_told_by_its_code_and_retry_after() -> None:
    assert replies.failure_text(SchoolBusy("no slot", retry_after_s=4.2)) == (
        "学校系统现在很忙，请 5 秒后再试。\n（超出学校系统的并发预算，且没有旧答案可用）"
    )
    assert "重新绑定" in replies.failure_text(InvalidPassword())


# --- the byte limit on huge answers ---------------------------------------------------------

WORDS = st.text(min_size=0, max_size=60)
MONEY = st.decimals(min_value=-10_000, max_value=10_000, places=2, allow_nan=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(WORDS, MONEY, st.integers(0, 60 * 24 * 31)), max_size=400))
def test_transactions_text_holds_the_limit(rows: list[tuple[str, Decimal, int]]) -> None:
    transactions = [
        Transaction(at(MONDAY, 0) - timedelta(minutes=m), "消费", place, amount, amount)
        for place, amount, m in rows
    ]
    text = transactions_text(transactions, "近 31 天消费记录")
    assert fits(text)
    assert text.startswith("近 31 天消费记录：")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(WORDS, WORDS), min_size=1, max_size=150))
def test_timetable_and_grades_hold_the_limit(rows: list[tuple[str, str]]) -> None:
    courses = tuple(
        course(name or "课", (Meeting(tuple(range(1, 17)), 1 + n % 7, (1, 2), place, "x"),))
        for n, (name, place) in enumerate(rows)
    )
    for day in ("today", "tomorrow", "week", "next_week"):
        assert fits(timetable_text(Timetable(2026, 1, courses), day, MONDAY, CALENDAR))
    grades = [Grade("0", name, "", place, None, Decimal(2), None, "") for name, place in rows]
    assert fits(grades_text(grades, gpa=Decimal("3.5")))
    exams = [
        Exam(MONDAY + timedelta(days=n % 40 - 20), time(9), time(11), place, name, "0")
        for n, (name, place) in enumerate(rows)
    ]
    assert fits(exams_text(exams, at(MONDAY, 10)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WORDS, max_size=60), WORDS)
def test_book_texts_hold_the_limit(titles: list[str], query: str) -> None:
    books = [book(title, f"b{n:07d}") for n, title in enumerate(titles)]
    assert fits(books_text(books, query, len(books), BASE))
    for article in books_news(books, BASE):
        assert len(article.description) <= replies.MAX_DESCRIPTION_CHARS

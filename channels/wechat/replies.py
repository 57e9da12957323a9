"""The answers a follower reads in WeChat, written in Chinese: pure functions of the
domain models (systems/*/models.py), the campus calendar and the error catalogue.

Every text reply is at most `MAX_TEXT_BYTES` UTF-8 bytes (WeChat refuses a text of
2048 bytes or more): a longer one is cut at a line end where it can be, and ends
with "…" and a pointer to the app or web page (`fit`). Money has two decimals and
元; times are China time (Asia/Shanghai, +08:00, no daylight saving). An answer
served from the cache while the school fails says so, with the time it was fetched
(`Stale`). No reply repeats a message's text back: a password sent by mistake is
never echoed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Final
from urllib.parse import quote

from channels.wechat.commands import MAX_DAYS, Day
from services.campus import CHINA, CampusCalendar, Term
from services.codes import ErrorCode
from services.errors import ServiceError
from systems.academic.models import Course, Exam, Grade, Meeting, Timetable
from systems.card.models import Transaction
from systems.library.models import BookBrief
from systems.library.service import encode_book_url

# WeChat's bound is "under 2048 bytes".
MAX_TEXT_BYTES: Final = 2047
MORE_HINT: Final = "…\n（内容太长，只显示了一部分；完整内容请在 jnu.fm App 或网页上查看）"
# Up to this many articles in a news reply. WeChat shows only the first one in a passive
# reply to a follower's message, and up to 8 in other cases.
MAX_ARTICLES: Final = 8
# An article's description is shown in two or three lines of the card.
MAX_DESCRIPTION_CHARS: Final = 120
MAX_TITLE_CHARS: Final = 64
# How much of a book query an answer repeats.
MAX_QUERY_CHARS: Final = 30

_CENT: Final = Decimal("0.01")
_WEEKDAYS: Final = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
TODAY_TITLE: Final = "今日消费记录"


@dataclass(frozen=True, slots=True)
class Stale:
    """An answer served from the cache because the school failed: when the school
    produced it (`Answer.as_of`) and when it is read."""

    as_of: datetime
    now: datetime


@dataclass(frozen=True, slots=True)
class NewsArticle:
    """One article of a news (图文) reply; `pic_url` is "" for none."""

    title: str
    description: str
    url: str
    pic_url: str


# --- shared pieces ------------------------------------------------------------------------


def fit(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """The text if it is at most `limit` UTF-8 bytes; else its start, cut at a line end
    where one is near, and `MORE_HINT`."""
    clean = text.encode("utf-8", "replace").decode("utf-8")
    encoded = clean.encode("utf-8")
    if len(encoded) <= limit:
        return clean
    budget = max(0, limit - len(MORE_HINT.encode("utf-8")) - 1)
    head = encoded[:budget].decode("utf-8", "ignore")
    line_end = head.rfind("\n")
    if line_end >= len(head) // 2:
        head = head[:line_end]
    return head.rstrip() + "\n" + MORE_HINT


def yuan(amount: Decimal, signed: bool = False) -> str:
    """An amount with two decimals and 元 ("123.45 元"; signed: "+50.00 元")."""
    if not amount.is_finite():
        return f"{amount} 元"
    value = amount.quantize(_CENT, rounding=ROUND_HALF_UP)
    return f"{value:+f} 元" if signed else f"{value:f} 元"


def china(moment: datetime) -> datetime:
    """The moment in China time (a naive one is taken as China time already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=CHINA)
    return moment.astimezone(CHINA)


def day_label(day: date) -> str:
    """ "12月7日 周一"."""
    return f"{day.month}月{day.day}日 {_WEEKDAYS[day.weekday()]}"


def stale_note(stale: Stale) -> str:
    """ "（学校系统暂时无法访问，以下是 12:03 查询到的结果）"; the date too if not today."""
    as_of, now = china(stale.as_of), china(stale.now)
    when = f"{as_of:%H:%M}"
    if as_of.date() != now.date():
        when = f"{as_of.month}月{as_of.day}日 {when}"
    return f"（学校系统暂时无法访问，以下是 {when} 查询到的结果）"


def _reply(lines: Iterable[str], stale: Stale | None) -> str:
    body = "\n".join(lines)
    if stale is not None:
        body = stale_note(stale) + "\n" + body
    return fit(body)


def _clip(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


# --- the card center ----------------------------------------------------------------------


def balance_text(balance: Decimal, *, stale: Stale | None = None) -> str:
    """ "您的校园卡余额为 123.45 元。"."""
    return _reply([f"您的校园卡余额为 {yuan(balance)}。"], stale)


def recent_title(days: int) -> str:
    """The title of `近 N 天消费`: "近 7 天消费记录"."""
    return f"近 {days} 天消费记录"


def transactions_text(
    transactions: Sequence[Transaction], title: str, *, stale: Stale | None = None
) -> str:
    """The transactions, latest first (time, place, amount), then the count, what was
    spent and paid in, and the balance after the latest."""
    if not transactions:
        return _reply([f"{title}：没有记录。"], stale)
    rows = sorted(transactions, key=lambda t: t.time, reverse=True)
    days = {china(t.time).date() for t in rows}
    spent = sum((-t.amount for t in rows if t.amount < 0), Decimal(0))
    paid_in = sum((t.amount for t in rows if t.amount > 0), Decimal(0))
    summary = f"共 {len(rows)} 笔，支出 {yuan(spent)}"
    if paid_in:
        summary += f"，充值 {yuan(paid_in)}"
    summary += f"；余额 {yuan(rows[0].balance_after)}。"
    lines = [f"{title}：", summary]
    for row in rows:
        moment = china(row.time)
        when = f"{moment:%m-%d %H:%M}" if len(days) > 1 else f"{moment:%H:%M}"
        place = row.position or row.way or "未知地点"
        lines.append(f"{when} {place} {yuan(row.amount, signed=True)}")
    return _reply(lines, stale)


# --- the academic office ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TermDay:
    """Where a date falls in a term: its teaching week (0 or less before week 1; past
    the last week in the holidays) and weekday (1 = Monday)."""

    term: Term
    week: int
    weekday: int


def term_day(on: date, term: Term, calendar: CampusCalendar) -> TermDay | None:
    """The teaching week and weekday of a date in a term; None if the calendar does
    not know when the term starts."""
    starts = calendar.starts(term)
    if starts is None:
        return None
    return TermDay(term, (on - starts).days // 7 + 1, on.isoweekday())


def timetable_days(day: Day, today: date) -> list[date]:
    """The dates a timetable command asks for: one day, or Monday to Sunday."""
    if day == "today":
        return [today]
    if day == "tomorrow":
        return [today + timedelta(days=1)]
    monday = today - timedelta(days=today.weekday())
    if day == "next_week":
        monday += timedelta(weeks=1)
    return [monday + timedelta(days=n) for n in range(7)]


def classes_on(courses: Iterable[Course], when: TermDay) -> list[tuple[Course, Meeting]]:
    """The meetings of a teaching week's weekday, by their first period."""
    found = [
        (course, meeting)
        for course in courses
        for meeting in course.meetings
        if when.week in meeting.weeks and meeting.weekday == when.weekday
    ]
    return sorted(found, key=lambda cm: (min(cm[1].periods, default=0), cm[0].name))


def timetable_text(
    timetable: Timetable,
    day: Day,
    today: date,
    calendar: CampusCalendar,
    *,
    stale: Stale | None = None,
) -> str:
    """The classes of today, tomorrow, this week or next week; `today` is the campus date."""
    term = Term(timetable.year, timetable.term)
    dates = timetable_days(day, today)
    if calendar.starts(term) is None:
        return _reply(
            [
                f"不知道 {timetable.year}-{timetable.year + 1} 学年第 {timetable.term} 学期"
                "从哪天开始，排不出每天的课，请在 jnu.fm App 或网页上查看整个学期的课表。"
            ],
            stale,
        )
    lines: list[str] = []
    if len(dates) > 1:
        first = term_day(dates[0], term, calendar)
        assert first is not None  # the term's start is known (checked above)
        label = "本周" if day == "week" else "下周"
        lines.append(
            f"{label}{_week_label(first.week)}课表（{dates[0].month}月{dates[0].day}日—"
            f"{dates[-1].month}月{dates[-1].day}日）："
        )
        any_class = False
        for on in dates:
            when = term_day(on, term, calendar)
            assert when is not None
            classes = classes_on(timetable.courses, when)
            if not classes:
                continue
            any_class = True
            lines.append(f"【{day_label(on)}】")
            lines.extend(_class_line(course, meeting, calendar) for course, meeting in classes)
        if not any_class:
            lines.append("这一周没有课。")
    else:
        on = dates[0]
        when = term_day(on, term, calendar)
        assert when is not None
        name = "今天" if day == "today" else "明天"
        lines.append(f"{name}（{day_label(on)}{_week_label(when.week, inner=True)}）的课：")
        classes = classes_on(timetable.courses, when)
        if classes:
            lines.extend(_class_line(course, meeting, calendar) for course, meeting in classes)
        else:
            lines.append("没有课。")
    unread = [course for course in timetable.courses if course.unparsed]
    if unread:
        names = "、".join(_clip(course.name, 20) for course in unread[:5])
        lines.append(f"另有 {len(unread)} 门课的上课时间未能识别（{names}），请以教务处为准。")
    return _reply(lines, stale)


def _week_label(week: int, inner: bool = False) -> str:
    text = "未开学" if week < 1 else f"第 {week} 周"
    return f"，{text}" if inner else f"（{text}）"


def _periods_label(periods: tuple[int, ...]) -> str:
    if not periods:
        return ""
    ordered = sorted(periods)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 1:
        return f"第{ordered[0]}-{ordered[-1]}节"
    return "第" + ",".join(map(str, ordered)) + "节"


def _class_line(course: Course, meeting: Meeting, calendar: CampusCalendar) -> str:
    parts = [_periods_label(meeting.periods)]
    span = calendar.span(meeting.periods)
    if span is not None:
        parts.append(f"{_hhmm(span[0])}-{_hhmm(span[1])}")
    parts.append(_clip(course.name, 40))
    if meeting.place:
        parts.append(f"@{_clip(meeting.place, 30)}")
    return " ".join(part for part in parts if part)


def _hhmm(moment: time) -> str:
    return f"{moment:%H:%M}"


def exams_text(exams: Sequence[Exam], now: datetime, *, stale: Stale | None = None) -> str:
    """Upcoming exams first (soonest first, with the days left), then those over."""
    if not exams:
        return _reply(["暂时没有考试安排。"], stale)
    moment = china(now)
    upcoming = sorted((e for e in exams if e.ends_at >= moment), key=lambda e: e.starts_at)
    over = sorted((e for e in exams if e.ends_at < moment), key=lambda e: e.starts_at)
    lines: list[str] = []
    if upcoming:
        lines.append(f"接下来的考试（{len(upcoming)} 场）：")
        for exam in upcoming:
            lines.append(f"{_exam_line(exam)} · {_days_left(exam, moment)}")
    else:
        lines.append("接下来没有考试了。")
    if over:
        lines.append(f"已结束（{len(over)} 场）：")
        lines.extend(
            f"{exam.date.month}月{exam.date.day}日 {_clip(exam.course_name, 40)}"
            for exam in reversed(over)
        )
    return _reply(lines, stale)


def _exam_line(exam: Exam) -> str:
    line = f"{day_label(exam.date)} {_hhmm(exam.start)}-{_hhmm(exam.end)} "
    line += _clip(exam.course_name, 40)
    if exam.place:
        line += f" @{_clip(exam.place, 30)}"
    return line


def _days_left(exam: Exam, now: datetime) -> str:
    if exam.starts_at <= now:
        return "正在进行"
    days = (exam.date - now.date()).days
    if days == 0:
        return "今天"
    if days == 1:
        return "明天"
    return f"还有 {days} 天"


def grades_text(
    grades: Sequence[Grade], *, gpa: Decimal | None = None, stale: Stale | None = None
) -> str:
    """Each course's score and credits (failed ones marked), then the grade point average."""
    if not grades:
        return _reply(["暂时没有成绩。"], stale)
    failed = sum(1 for grade in grades if grade.failed)
    head = f"成绩（{len(grades)} 门"
    head += f"，其中 {failed} 门不及格）：" if failed else "）："
    lines = [head]
    if gpa is not None and gpa.is_finite():
        lines.append(f"平均学分绩点：{gpa:f}")
    for grade in grades:
        line = f"{_clip(grade.name, 40)} {_clip(grade.score_text, 10) or '—'}"
        if grade.credits is not None and grade.credits.is_finite():
            line += f" · {_number(grade.credits)} 学分"
        if grade.failed:
            line += "（不及格）"
        lines.append(line)
    return _reply(lines, stale)


def _number(value: Decimal) -> str:
    """4.0 -> "4", 2.50 -> "2.5"."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- the library --------------------------------------------------------------------------


def book_url(book: BookBrief, base_url: str) -> str:
    """The book's page on this server: 2013's `/web/book?url=<URL-safe base64>`."""
    record = book.record_url
    if not record.isascii():
        record = quote(record, safe=":/?&=%#;,+@!$'()*[]~")
    return f"{base_url.rstrip('/')}/web/book?url={encode_book_url(record)}"


def books_news(
    books: Sequence[BookBrief], base_url: str, *, limit: int = MAX_ARTICLES
) -> list[NewsArticle]:
    """Up to `limit` books as news articles: title, author, publisher and copies, the
    book's page, its cover."""
    base = base_url.rstrip("/")
    articles = []
    for book in books[: max(0, limit)]:
        cover = f"{base}/isbn/image/{book.cover_isbn}" if book.cover_isbn else ""
        articles.append(
            NewsArticle(
                title=_clip(book.title or "（无题名）", MAX_TITLE_CHARS),
                description=_clip(_book_description(book), MAX_DESCRIPTION_CHARS),
                url=book_url(book, base),
                pic_url=cover,
            )
        )
    return articles


def books_text(books: Sequence[BookBrief], query: str, total: int | None, base_url: str) -> str:
    """The books as a text reply (one line and its link each), for where a news reply
    shows only one article."""
    shown = _clip(query, MAX_QUERY_CHARS)
    if not books:
        return no_books_text(query)
    count = f"共 {total} 条" if total is not None else f"{len(books)} 条"
    lines = [f"“{shown}”的检索结果（{count}）："]
    for number, book in enumerate(books, start=1):
        lines.append(f"{number}. {_clip(book.title or '（无题名）', 40)} — {_holdings(book)}")
        lines.append(book_url(book, base_url))
    return fit("\n".join(lines))


def no_books_text(query: str) -> str:
    return fit(f"没有找到“{_clip(query, MAX_QUERY_CHARS)}”相关的图书，换个关键词试试？")


def book_prompt_text() -> str:
    return "想找什么书？请发送“图书 书名”，例如：图书 红楼梦（英文：book python）"


def _book_description(book: BookBrief) -> str:
    parts = [part for part in (book.author, book.publisher, book.year) if part]
    first = " / ".join(parts)
    return f"{first}\n{_holdings(book)}" if first else _holdings(book)


def _holdings(book: BookBrief) -> str:
    if not book.holdings:
        return book.status or "馆藏信息未知"
    available = sum(1 for h in book.holdings if h.available)
    where = next((h for h in book.holdings if h.available), book.holdings[0])
    call = f" {where.call_number}" if where.call_number else ""
    return f"可借 {available}/{len(book.holdings)} · {where.location}{call}".strip()


# --- accounts, help and errors --------------------------------------------------------------


def help_text(recognised: bool = True) -> str:
    """Every command, Chinese first, its English aliases in brackets; not recognised:
    says so first (without repeating the message)."""
    lines = []
    if not recognised:
        lines.append("抱歉，没看懂这条消息。")
    lines += [
        "jnu.fm 可以帮你查：",
        "余额（rest / yue）：校园卡余额",
        "今日消费记录（card）：今天的消费",
        f"近7天消费：最近几天的消费，天数 1-{MAX_DAYS}，如“近30天消费”；最近消费：近 7 天",
        "课表（kebiao）：本周的课；今天课表、明天课表、下周课表",
        "考试（exam）：考试安排",
        "成绩（grade）：成绩和绩点",
        "图书 书名（book 书名）：检索图书馆藏书",
        "绑定（bind）/ 解绑（unbind）：绑定或解除学号",
        "消费提醒、余额提醒 20、成绩提醒、考试提醒、调课提醒：有变化时告诉你",
        "提醒：查看开启的提醒；取消提醒：全部关闭",
        "帮助（help）：显示这份说明",
        "请不要在聊天中发送密码：绑定在网页上完成。",
    ]
    return fit("\n".join(lines))


def welcome_text(bind_url: str) -> str:
    return fit(
        "欢迎关注 jnu.fm！\n"
        f"先绑定学号：{bind_url}\n"
        "（密码只在这个网页上填写，不要在聊天中发送。）\n\n" + help_text()
    )


def bind_text(bind_url: str) -> str:
    return fit(f"请在这个网页上绑定学号：{bind_url}\n密码只在网页上填写，不要在聊天中发送。")


def unbound_text() -> str:
    return "已解除绑定。需要时发送“绑定”重新绑定。"


def not_bound_text(bind_url: str) -> str:
    return fit(f"你还没有绑定学号，请先在这个网页上绑定：{bind_url}")


def password_refused_text(bind_url: str | None = None) -> str:
    """For a message that looks like a password: never taken in chat, not kept."""
    where = f"请在绑定网页上填写：{bind_url}" if bind_url else "请发送“绑定”，在网页上填写。"
    return fit(
        "为了你的账户安全，jnu.fm 不在聊天中接收密码，刚才这条消息不会被保存。\n"
        f"{where}\n如果刚才发送的是真实密码，建议尽快修改。"
    )


def version_text(version: str) -> str:
    return fit(f"jnu.fm {_clip(version, 40)}")


def pending_text() -> str:
    """While the school is still answering: ask again in a moment."""
    return "正在向学校系统查询，请稍等几秒后再发一次。"


def school_busy_text(retry_after_s: float | None = None) -> str:
    return "学校系统现在很忙，" + _retry(retry_after_s) + "。"


# The student's words for each family of error codes; the catalogue's own sentence
# (ErrorCode.when_zh) follows in brackets.
_SCHOOL_DOWN: Final = "学校系统暂时无法访问"
_LEADS: Final[dict[str, str]] = {
    "invalid_credentials": "学校系统不接受绑定的学号或密码。如果改过密码，请解绑后重新绑定",
    "password_changed": "绑定的密码已经在学校修改过了，请解绑后重新绑定",
    "too_many_failed_logins": "密码错误次数太多，暂时不能查询",
    "rate_limited": "查询太频繁了",
    "student_busy": "你的查询太多，还在排队",
    "client_slowed": "查询暂时被限速",
    "school_unavailable": _SCHOOL_DOWN,
    "school_page_unreadable": "学校系统返回的页面读不懂",
    "school_session_lost": "学校系统中断了登录",
    "school_busy": "学校系统现在很忙",
    "school_timeout": "学校系统没有及时回答",
    "query_rejected": "学校系统不接受这次查询",
    "not_configured": "这项查询暂未开通",
    "not_bound": "你还没有绑定学号",
    "storage_unavailable": "jnu.fm 暂时出了点问题",
    "internal_error": "jnu.fm 暂时出了点问题",
    "shutting_down": "jnu.fm 正在重启",
    "overloaded": "jnu.fm 现在太忙",
    "invalid_query": "这个检索词查不了",
    "missing_query": "请在“图书”后面写上书名",
    "unknown_book": "图书馆目录中没有这本书",
}
# Codes worth trying again after a while.
_RETRY_CODES: Final = frozenset(
    {
        "too_many_failed_logins",
        "rate_limited",
        "student_busy",
        "client_slowed",
        "school_unavailable",
        "school_page_unreadable",
        "school_session_lost",
        "school_busy",
        "school_timeout",
        "storage_unavailable",
        "internal_error",
        "shutting_down",
        "overloaded",
    }
)


def error_text(error: ErrorCode, retry_after_s: float | None = None) -> str:
    """What a query that ended with this error tells the follower: our words for the
    code's family, when to try again, and the catalogue's sentence in brackets."""
    lead = _LEADS.get(error.code, "查询没有成功")
    if error.code in _RETRY_CODES:
        lead += "，" + _retry(retry_after_s)
    return fit(f"{lead}。\n（{error.when_zh}）")


def failure_text(error: ServiceError) -> str:
    """`error_text` of a query's service error (its code and its retry-after)."""
    return error_text(error.error, error.retry_after_s)


def _retry(retry_after_s: float | None) -> str:
    if retry_after_s is None or not math.isfinite(retry_after_s) or retry_after_s <= 0:
        return "请稍后再试"
    seconds = math.ceil(retry_after_s)
    if seconds < 60:
        return f"请 {seconds} 秒后再试"
    if seconds < 3600:
        return f"请 {math.ceil(seconds / 60)} 分钟后再试"
    return f"请 {math.ceil(seconds / 3600)} 小时后再试"

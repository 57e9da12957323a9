"""What a follower's WeChat message asks: a text message, a menu click or a subscribe
event read into a typed `Command`. Pure: no I/O, never raises on any text.

Commands (Chinese first, the 2013 Latin aliases after; the 2013 server matched the
same words):

    余额 饭卡余额 校园卡余额 (rest, yue, balance)       balance
    今日消费记录 今日消费 饭卡 (card)                   transactions_today
    近7天消费 近 30 天消费 最近消费                    transactions_recent (days 1..31;
                                                      最近消费: 7)
    课表 (kebiao)                                      timetable, this week
    今天课表 明天的课 本周课表 这周课表 下周课表 今天   timetable of that day or week
    考试 (exam, exams, kaoshi)                         exams
    成绩 (grade, grades, chengji, score, gpa)          grades
    图书 X (book X)                                    book_search; no X: book_prompt
    帮助 (help)                                        help
    版本 (version)                                     version
    绑定 (bind) / 解绑 (unbind)                         bind / unbind
    消费提醒 余额提醒 20 成绩提醒 考试提醒 48小时 调课提醒  watch (a watch of that kind,
                                                      through this chat)
    提醒 我的提醒 / 取消提醒                           watches (list) / unwatch (all)

How a text is read, in order:

1. Longer than `MAX_TEXT_BYTES` UTF-8 bytes (WeChat sends at most 2048): help, not
   understood, and (unread) not kept: `original` is "".
2. NFKC (full-width letters, digits and spaces become plain ones), control and format
   characters dropped, case folded, trailing punctuation (。？！.?! and the like) and
   surrounding spaces removed. Commands are then matched with every space removed
   ("余 额", "近 7 天消费"); a book search keeps the words of its query as sent.
3. Traditional characters common in these commands are read as simplified through
   `TRADITIONAL` (a short table, one character for one: 餘額, 課表, 圖書, 考試, 成績...).
   Only the command words go through it; a book query is searched as written.
4. A Latin command word of 4 or more letters also matches at one edit from an alias
   (an insertion, a deletion, a substitution or two neighbours swapped: "kebio",
   "hlep"), unless it is one edit from aliases of two different commands.
5. Anything else is help, not understood (`recognised=False`); a message with
   nothing left after step 2 ("", "？") is help.

Passwords are never taken in chat (binding is a web page). A message is read as
`looks_like_password`, before any command, when (after step 2):

- it starts with 绑定/bind, 登录/login, 密码/password/pwd/pw or 学号 and has anything
  after that word ("绑定 2010204060 052690");
- it holds a run of exactly 6 digits anywhere (a card password: "052690",
  "余额 052690", "图书 052690"; "052 690" too), or is 12 or more digits alone (a
  student number and a password run together);
- it has a run of 6 to 16 digits followed by another ASCII word ("2010204060 abc123":
  a student number and an academic office password);
- it matched no command and is one word of 6 to 32 printable ASCII characters mixing
  letters and digits ("Pa55word").

A 10-digit student number alone is not a secret: it is help, not understood.

The original text of such a message is not kept in the command (`original` is ""),
so that nothing downstream stores or logs it by mistake.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

CommandKind = Literal[
    "balance",
    "transactions_today",
    "transactions_recent",
    "timetable",
    "exams",
    "grades",
    "book_search",
    "book_prompt",
    "help",
    "version",
    "bind",
    "unbind",
    "welcome",
    "looks_like_password",
    "watch",
    "watches",
    "unwatch",
]
Day = Literal["today", "tomorrow", "week", "next_week"]

# WeChat's own bound on a text message; anything longer is no command.
MAX_TEXT_BYTES: Final = 2048
# The days `近 N 天消费` may ask for (the card center's history is asked day by day).
MIN_DAYS: Final = 1
MAX_DAYS: Final = 31
# 最近消费: the 2013 "month", today and the days before it.
RECENT_DAYS: Final = 7


@dataclass(frozen=True, slots=True)
class Command:
    """What one message asks.

    `query` is the book search's query (normalised: NFKC, single spaces), `days` the
    days of transactions_recent, `day` the timetable's day or week. `original` is the
    message as received, stripped of surrounding spaces ("" for looks_like_password
    and for events). `recognised` is False for the help answered to a message that
    asked nothing known.
    """

    kind: CommandKind
    original: str = ""
    query: str | None = None
    days: int | None = None
    day: Day | None = None
    recognised: bool = True
    # watch: the watch's kind (services/watches/notices.py KINDS) and its parameter
    # (low_balance: the threshold in yuan; exam_soon: hours before), "" for the default.
    watch: str | None = None
    param: str = ""


class MenuKey(StrEnum):
    """The event keys of the account's menu buttons (type `click`)."""

    BALANCE = "BALANCE"
    TODAY = "TODAY"  # today's transactions
    SPENDING_7D = "SPENDING_7D"
    TIMETABLE_TODAY = "TIMETABLE_TODAY"
    TIMETABLE_TOMORROW = "TIMETABLE_TOMORROW"
    TIMETABLE_WEEK = "TIMETABLE_WEEK"
    EXAMS = "EXAMS"
    GRADES = "GRADES"
    BOOK = "BOOK"  # asks what to search
    BIND = "BIND"
    UNBIND = "UNBIND"
    HELP = "HELP"


MENU: Final[dict[MenuKey, Command]] = {
    MenuKey.BALANCE: Command("balance"),
    MenuKey.TODAY: Command("transactions_today"),
    MenuKey.SPENDING_7D: Command("transactions_recent", days=RECENT_DAYS),
    MenuKey.TIMETABLE_TODAY: Command("timetable", day="today"),
    MenuKey.TIMETABLE_TOMORROW: Command("timetable", day="tomorrow"),
    MenuKey.TIMETABLE_WEEK: Command("timetable", day="week"),
    MenuKey.EXAMS: Command("exams"),
    MenuKey.GRADES: Command("grades"),
    MenuKey.BOOK: Command("book_prompt"),
    MenuKey.BIND: Command("bind"),
    MenuKey.UNBIND: Command("unbind"),
    MenuKey.HELP: Command("help"),
}

# Traditional characters of the command words, read as their simplified forms. Only
# characters that occur in commands: the table is for matching, not for conversion,
# and maps one character to one (positions in a message stay where they were).
TRADITIONAL: Final[dict[str, str]] = {
    "餘": "余",
    "額": "额",
    "課": "课",
    "圖": "图",
    "書": "书",
    "試": "试",
    "績": "绩",
    "費": "费",
    "錄": "录",
    "記": "记",
    "飯": "饭",
    "週": "周",
    "這": "这",
    "幫": "帮",
    "綁": "绑",
    "碼": "码",
    "學": "学",
    "號": "号",
    "場": "场",
    "間": "间",
    "時": "时",
    "賬": "账",
    "單": "单",
    "詢": "询",
    "禮": "礼",
    "個": "个",
}
_TRADITIONAL_TABLE: Final = str.maketrans(TRADITIONAL)

# Each command's words (after normalising: spaces removed, case folded, simplified).
_FIXED: Final[dict[str, Command]] = {}


def _words(command: Command, *words: str) -> None:
    for word in words:
        _FIXED[word] = command


_BOOK_PROMPT: Final = Command("book_prompt")
_words(Command("balance"), "余额", "饭卡余额", "校园卡余额", "卡余额", "查余额", "查询余额")
_words(Command("balance"), "rest", "yue", "balance")
_words(
    Command("transactions_today"),
    "今日消费记录",
    "今日消费",
    "今天消费",
    "今天的消费",
    "今天消费记录",
    "今日账单",
    "饭卡",
    "消费记录",
    "card",
)
_words(Command("transactions_recent", days=RECENT_DAYS), "最近消费", "最近消费记录", "最近的消费")
_words(Command("timetable", day="week"), "课表", "课程表", "查课表", "kebiao")
_words(Command("exams"), "考试", "考试安排", "考试时间", "查考试", "考场", "exam", "exams")
_words(Command("exams"), "kaoshi")
_words(Command("grades"), "成绩", "查成绩", "成绩单", "绩点", "grade", "grades", "chengji")
_words(Command("grades"), "score", "scores", "gpa")
_words(Command("help"), "", "帮助", "help", "菜单", "menu", "h")
_words(Command("version"), "版本", "version")
_words(Command("bind"), "绑定", "bind", "登录", "login")
_words(Command("unbind"), "解绑", "解除绑定", "取消绑定", "unbind")
_words(_BOOK_PROMPT, "图书", "book", "books", "查书", "找书")
_words(Command("watches"), "提醒", "我的提醒", "查看提醒", "提醒列表", "通知")
_words(Command("unwatch"), "取消提醒", "关闭提醒", "取消全部提醒", "关闭通知", "取消通知")

# Latin aliases that also match at one edit (words of 4+ letters; step 4).
_FUZZY: Final[dict[str, Command]] = {
    word: command for word, command in _FIXED.items() if word.isascii() and len(word) >= 4
}

_DAY_WORDS: Final[dict[str, Day]] = {
    "今天": "today",
    "今日": "today",
    "明天": "tomorrow",
    "明日": "tomorrow",
    "本周": "week",
    "这周": "week",
    "本星期": "week",
    "这星期": "week",
    "这个星期": "week",
    "这礼拜": "week",
    "下周": "next_week",
    "下星期": "next_week",
    "下个星期": "next_week",
    "下礼拜": "next_week",
    "today": "today",
    "tomorrow": "tomorrow",
    "week": "week",
}
_DAY = "|".join(sorted(map(re.escape, _DAY_WORDS), key=len, reverse=True))
_CLASSES = r"(?:课表|课程表|课程|课|kebiao)"
# 今天课表, 明天的课, 下周课表, 本周; and the other order: 课表今天, kebiao tomorrow.
_TIMETABLE_DAY = re.compile(rf"^查?(?P<day>{_DAY})(?:的|有什么|有啥|有哪些)?{_CLASSES}?$")
_TIMETABLE_AFTER = re.compile(rf"^{_CLASSES}(?P<day>{_DAY})$")
# 近7天消费, 最近30天的消费记录, 7天消费, 近7日账单.
_RECENT = re.compile(
    r"^(?:最近|近)?(?P<days>[0-9]{1,3})(?:天|日)内?的?(?:消费|消费记录|账单|流水|记录)$"
)
# 消费提醒, 余额提醒 20, 余额低于20元提醒, 考试提醒 48 小时, 开启成绩提醒, 调课提醒.
_WATCH_KINDS: Final[dict[str, str]] = {
    "消费": "card_transaction",
    "余额": "low_balance",
    "余额不足": "low_balance",
    "成绩": "grade",
    "考试": "exam_soon",
    "调课": "timetable_change",
    "课表": "timetable_change",
    "课表变动": "timetable_change",
}
_WATCH_WHAT = "|".join(sorted(map(re.escape, _WATCH_KINDS), key=len, reverse=True))
_AMOUNT = r"[0-9]{1,4}(?:\.[0-9]{1,2})?"
_WATCH = re.compile(
    rf"^(?:开启|打开|设置|开通)?(?P<what>{_WATCH_WHAT})(?:低于|少于|不足)?(?P<before>{_AMOUNT})?"
    rf"(?:元|块|小时|h)?(?:提醒|通知)(?P<after>{_AMOUNT})?(?:元|块|小时|h)?$"
)
# Words a book query may follow without a space (图书红楼梦), and Latin ones it follows
# after a space (book python).
_BOOK_WORDS: Final = ("图书", "查书", "找书")
_BOOK_LATIN: Final = ("book", "books")

# The password rules of the module docstring.
_PASSWORD_WORDS = re.compile(
    r"^(?:(?:绑定|登录|密码|学号)|(?:bind|login|password|passwd|pwd|pw)(?=[\s:=：,，0-9]))"
    r"[\s:=：,，]*(?P<rest>.*)$"
)
_SIX_DIGITS = re.compile(r"(?<![0-9])[0-9]{6}(?![0-9])")
_RUN_TOGETHER = re.compile(r"^[0-9]{12,}$")
_NUMBER_THEN_WORD = re.compile(r"(?<![0-9])[0-9]{6,16}[\s:/,，;；+|-]+[\x21-\x7e]")
_MIXED_WORD = re.compile(r"^(?=[\x21-\x7e]*[a-z])(?=[\x21-\x7e]*[0-9])[\x21-\x7e]{6,32}$")
# Control, format (zero-width and direction marks), surrogate, private, unassigned.
_DROPPED: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_TRAILING: Final = "。．.？?！!~～、，,;；…　 "
_SPACES = re.compile(r"\s+")


def parse_text(text: str) -> Command:
    """The command a text message asks (help, not understood, when it asks none)."""
    original = text.strip()
    if len(original.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        # Not read at all, so not known to be free of a password: not kept either.
        return Command("help", recognised=False)
    spaced = _normalised(original)
    folded = spaced.casefold().translate(_TRADITIONAL_TABLE)
    if _looks_like_password(folded):
        return Command("looks_like_password")
    command = _command(folded.replace(" ", ""), spaced, folded)
    if command is None and " " not in folded and _MIXED_WORD.match(folded):
        return Command("looks_like_password")
    if command is None:
        return Command("help", original=original, recognised=False)
    return Command(
        command.kind,
        original=original,
        query=command.query,
        days=command.days,
        day=command.day,
        watch=command.watch,
        param=command.param,
    )


def parse_click(key: str) -> Command:
    """The command a menu button's event key stands for (help for a key we never set)."""
    try:
        return MENU[MenuKey(key.strip())]
    except ValueError:
        return Command("help", recognised=False)


def parse_event(event: str, key: str | None = None) -> Command | None:
    """The command an event asks, or None for events that need no answer (unsubscribe,
    a VIEW button, a location report...)."""
    kind = event.strip().lower()
    if kind == "subscribe":
        return Command("welcome")
    if kind == "click":
        return parse_click(key or "")
    return None


def _normalised(text: str) -> str:
    """NFKC, no control or format characters, single spaces, no trailing punctuation."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in unicodedata.normalize("NFKC", text)
        if ch.isspace() or unicodedata.category(ch) not in _DROPPED
    )
    return _SPACES.sub(" ", kept).strip(_TRAILING)


def _command(words: str, spaced: str, folded: str) -> Command | None:
    """`words`: folded, simplified, no spaces; `spaced` as sent (normalised); `folded`
    the same folded and simplified, with its spaces."""
    fixed = _FIXED.get(words)
    if fixed is not None:
        return fixed
    found = _TIMETABLE_DAY.match(words) or _TIMETABLE_AFTER.match(words)
    if found:
        return Command("timetable", day=_DAY_WORDS[found["day"]])
    found = _WATCH.match(words)
    if found:
        amount = found["before"] or found["after"] or ""
        return Command("watch", watch=_WATCH_KINDS[found["what"]], param=amount)
    found = _RECENT.match(words)
    if found:
        days = int(found["days"])
        if MIN_DAYS <= days <= MAX_DAYS:
            return Command("transactions_recent", days=days)
        return None
    book = _book(spaced, folded)
    if book is not None:
        return book
    return _fuzzy(words)


def _book(spaced: str, folded: str) -> Command | None:
    """A book search; its query keeps the message's own characters (case, traditional)."""
    for word in _BOOK_WORDS:
        if (
            folded.startswith(word)
            and spaced[: len(word)].casefold().translate(_TRADITIONAL_TABLE) == word
        ):
            return _book_search(spaced[len(word) :])
    head, _, tail = spaced.partition(" ")
    head = head.casefold()
    if tail and (head in _BOOK_LATIN or _fuzzy(head) == _BOOK_PROMPT):
        return _book_search(tail)
    return None


def _book_search(query: str) -> Command:
    query = query.strip()
    return Command("book_search", query=query) if query else _BOOK_PROMPT


def _fuzzy(word: str) -> Command | None:
    """The command of the one alias `word` is one edit from (4+ Latin letters)."""
    if not (word.isascii() and word.isalpha() and 4 <= len(word) <= 12):
        return None
    matches = {
        command
        for alias, command in _FUZZY.items()
        if abs(len(alias) - len(word)) <= 1 and _within_one_edit(word, alias)
    }
    return matches.pop() if len(matches) == 1 else None


def _within_one_edit(a: str, b: str) -> bool:
    """Optimal string alignment distance <= 1 (two neighbours swapped count as one)."""
    if a == b:
        return True
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    if len(long) - len(short) != 1:
        return False
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _looks_like_password(folded: str) -> bool:
    """The password rules of the module docstring (on the folded, simplified text)."""
    found = _PASSWORD_WORDS.match(folded)
    if found and found["rest"].strip():
        return True
    if _SIX_DIGITS.search(folded):
        return True
    digits = folded.replace(" ", "")
    if _RUN_TOGETHER.match(digits) or _SIX_DIGITS.fullmatch(digits):
        return True
    return bool(_NUMBER_THEN_WORD.search(folded))

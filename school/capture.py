"""The page a school client could not read, kept for the operator: what it received,
and a redacted copy of it.

`following()` opens a trail for one fetch (the query pipeline opens it around every
school fetch); the `Browser` (school/web.py) notes each answer it receives on the
trail of the task it runs in, so when a `SchoolPageError` escapes, the trail's last
exchange is the page that could not be read and the request that led to it.

`redact()` turns that page into something an operator may read and a database may
keep: the markup stays (tags, attribute names, classes, ids, field names: what tells
what changed), what a page says about a student does not:
- every digit becomes `0` (student numbers, balances, ID and phone numbers, dates);
- e-mail addresses become `[email]`; long letter-and-digit runs (tokens, view states,
  session ids) become `[secret]`;
- Chinese text keeps only the words in `WORDS` (labels and messages a client may look
  for: 余额, 密码错误, 课程名称...); every other character becomes `＊`, so a name
  never survives (a name made only of listed words would, and no listed word is a
  name);
- Latin words of text keep only the words in `LATIN_WORDS`; others become `x`s;
- the values of form fields are dropped (a hidden field's length is kept), except
  the labels of buttons, redacted as text;
- the query of every URL keeps its names and loses its values.
The request is kept as its method, its path (query values dropped) and the names of
the fields it posted: never a value, so never a password.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Bytes of a received body kept on the trail (a capture is cut shorter: see redact).
KEEP_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request a client sent and the answer it got."""

    method: str
    url: str
    form_names: tuple[str, ...]
    status: int
    content_type: str | None
    body: bytes


@dataclass(slots=True)
class PageTrail:
    """The answers one fetch received: the last one, and how many."""

    last: Exchange | None = None
    received: int = 0
    paths: list[str] = field(default_factory=list)

    def note(self, exchange: Exchange) -> None:
        self.last = exchange
        self.received += 1
        if len(self.paths) < 20:
            self.paths.append(f"{exchange.method} {urlsplit(exchange.url).path}")


_trail: ContextVar[PageTrail | None] = ContextVar("jnufm_page_trail", default=None)


@contextlib.contextmanager
def following(trail: PageTrail | None = None) -> Iterator[PageTrail]:
    """A trail for the school requests made within (and by tasks started within)."""
    trail = PageTrail() if trail is None else trail
    token = _trail.set(trail)
    try:
        yield trail
    finally:
        _trail.reset(token)


def note(
    method: str,
    url: str,
    form: Sequence[tuple[str, str]] | None,
    status: int,
    content_type: str | None,
    body: bytes,
) -> None:
    """Note an answer on the current trail (nothing outside one)."""
    trail = _trail.get()
    if trail is None:
        return
    names = tuple(dict.fromkeys(name for name, _ in form or ()))
    trail.note(Exchange(method, url, names, status, content_type, body[:KEEP_BYTES]))


# --- redaction --------------------------------------------------------------------------------

# Words a client looks for, or a page says about itself: kept in a redacted page.
# Multi-character words only: a single character could be part of a name.
# fmt: off
WORDS = frozenset((
    "余额", "卡余额", "当前过渡余额", "上次过渡余额", "过渡余额", "账户", "账号", "卡号",
    "学号", "姓名", "性别", "身份", "类型", "状态", "部门", "校园卡", "一卡通", "密码", "错误",
    "密码错误", "用户", "不存在", "用户不存在", "用户名", "验证码", "验证码错误", "登录",
    "登陆", "退出", "输入", "重新", "重新输入", "请重新输入", "确定", "取消", "提交", "查询",
    "当日", "今日", "历史", "流水", "交易", "明细", "时间", "地点", "金额", "消费", "充值",
    "商户", "名称", "日期", "起始", "终止", "开始", "结束", "上一页", "下一页", "首页", "尾页",
    "系统", "繁忙", "稍后", "再试", "超时", "会话", "失效", "小键盘", "清除", "关闭", "欢迎",
    "同学", "老师", "学期", "第一学期", "第二学期", "学年", "课程", "课程代码", "课程编号",
    "课程名称", "课程类别", "成绩", "学分", "绩点", "学分绩点", "备注", "班号", "学时",
    "时间安排", "任课教师", "上课地点", "阶段", "考试", "考试时间", "考试安排", "考试地点",
    "导出", "打印", "导出或打印考试安排表", "单周", "双周", "星期", "教务", "教务处", "图书",
    "图书馆", "题名", "作者", "责任者", "主要责任者", "出版", "出版项", "出版资料", "标准号",
    "载体形态", "索取号", "附注", "附注信息", "馆藏", "在架上", "借出", "应还日期", "检索",
    "结果", "没有", "找到", "记录", "书目", "详细", "信息", "可借", "服务", "大厅", "新版",
    "联系", "邮箱", "电话", "身份证",
))
# fmt: on
# Single characters kept where no listed word covers them: none is a common name
# character (周, 林, 文... are not here, though 周 means week).
SINGLE = frozenset("元页共请您的和或条节是否为在了")
# fmt: off
LATIN_WORDS = frozenset((
    "http", "https", "html", "status", "error", "errors", "server", "internal",
    "exception", "not", "found", "bad", "gateway", "service", "unavailable", "apache",
    "tomcat", "login", "logout", "password", "user", "name", "page", "next", "previous",
    "search", "results", "result", "no", "hits", "record", "title", "author", "the", "of",
    "and", "or", "to", "in", "on", "is", "a", "an", "for", "your", "please", "try",
    "again", "later", "asp", "net", "runtime", "version", "description", "copyright",
    "powered", "by", "welcome", "submit", "ok", "cancel", "doctype", "public", "dtd",
    "xhtml", "transitional", "strict", "en", "w3c", "org", "www", "text", "javascript",
    "css", "utf", "gbk", "gb", "charset", "content", "type", "alert", "function", "var",
    "return", "if", "else", "document", "window", "location", "href", "forms", "submit",
    "onload", "true", "false", "null", "new", "array", "images",
))
# fmt: on
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SECRET = re.compile(r"(?<![\w/+=])[A-Za-z0-9+/=_-]{16,}(?![\w/+=])")
_LATIN = re.compile(r"(?<![A-Za-z\[])[A-Za-z]+(?![A-Za-z\]])")
_DIGIT = re.compile(r"[0-9０-９]")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>")
_ATTR = re.compile(r"([^\s\"'=<>/]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?", re.DOTALL)
_BLOCK = re.compile(r"(<!--.*?-->|<script\b.*?</script\s*>|<style\b.*?</style\s*>)", re.I | re.S)
# Attributes whose values describe the page's structure: kept (digits still zeroed).
_STRUCTURE = frozenset(
    {
        "class", "id", "name", "type", "method", "align", "valign", "width", "height",
        "colspan", "rowspan", "border", "cellpadding", "cellspacing", "scope", "for",
        "language", "http-equiv", "charset", "rel", "target", "enctype", "size",
        "maxlength", "bgcolor", "color", "face", "nowrap", "selected", "checked",
        "disabled", "readonly", "style", "frameborder", "scrolling", "tabindex",
    }
)  # fmt: skip
_URLS = frozenset({"href", "src", "action", "background"})
_BUTTONS = frozenset({"submit", "button", "reset", "image"})


def _han(run: str) -> str:
    """A run of Chinese characters with every character outside a listed word masked."""
    out: list[str] = []
    i = 0
    while i < len(run):
        for size in range(min(12, len(run) - i), 1, -1):
            if run[i : i + size] in WORDS:
                out.append(run[i : i + size])
                i += size
                break
        else:
            out.append(run[i] if run[i] in SINGLE else "＊")
            i += 1
    return "".join(out)


def _secrets(text: str) -> str:
    """Runs that look like a token (letters and digits mixed, 16 or more) as `[secret]`."""

    def one(m: re.Match[str]) -> str:
        run = m.group()
        mixed = any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
        return "[secret]" if mixed else run

    return _SECRET.sub(one, text)


def redact_text(text: str) -> str:
    """Text of a page (or of an attribute) with what could say who or what masked."""
    text = _EMAIL.sub("[email]", text)
    text = _secrets(text)
    text = _HAN.sub(lambda m: _han(m.group()), text)

    def latin(m: re.Match[str]) -> str:
        word = m.group()
        if word in ("email", "secret") or word.lower() in LATIN_WORDS:
            return word
        return "x" * len(word)

    text = _LATIN.sub(latin, text)
    return _DIGIT.sub("0", text)


def redact_url(url: str) -> str:
    """A URL with its query values dropped (names kept) and the rest redacted."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "[url]"
    names = (_DIGIT.sub("0", _secrets(k)) for k, _ in parse_qsl(parts.query, True))
    query = urlencode([(name, "") for name in names])
    path = _DIGIT.sub("0", _secrets(parts.path))
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def _attributes(tag: str, raw: str) -> str:
    found = [(m.group(1), m.group(2)) for m in _ATTR.finditer(raw)]
    kind = next((v.strip("\"'").lower() for k, v in found if k.lower() == "type" and v), "")
    out: list[str] = []
    for name, quoted in found:
        key = name.lower()
        if quoted is None:
            out.append(name)
            continue
        value = quoted[1:-1] if quoted[:1] in "\"'" else quoted
        if key == "value":
            if (tag == "input" and kind in _BUTTONS) or tag in ("option", "button"):
                value = redact_text(value)
            else:
                value = f"[{len(value)} chars]" if value else ""
        elif key in _URLS:
            value = redact_url(unescape(value))
        elif key == "charset":
            value = value[:40]
        elif key in _STRUCTURE or key.startswith("data-"):
            value = _DIGIT.sub("0", _secrets(value))
        else:
            value = redact_text(value)
        out.append(f'{name}="{value.replace(chr(34), "&quot;")}"')
    return (" " + " ".join(out)) if out else ""


def _markup(html: str) -> str:
    out: list[str] = []
    at = 0
    for m in _TAG.finditer(html):
        out.append(redact_text(html[at : m.start()]))
        slash, tag, raw = m.groups()
        closing = "/" if raw.rstrip().endswith("/") else ""
        attrs = _attributes(tag.lower(), raw.rstrip().removesuffix("/"))
        out.append(f"<{slash}{tag}{attrs}{' /' if closing else ''}>")
        at = m.end()
    out.append(redact_text(html[at:]))
    return "".join(out)


def redact(html: str, max_chars: int) -> tuple[str, bool]:
    """A page's markup kept, what it says about anyone masked (see the module docstring),
    cut to `max_chars`; and whether it was cut."""
    parts: list[str] = []
    for piece in _BLOCK.split(html):
        if (
            piece.startswith("<!--")
            or piece[:7].lower() == "<script"
            or piece[:6].lower() == "<style"
        ):
            # Comments, scripts and styles: their text redacted as text (a script's
            # alert() message stays readable when it is made of listed words).
            head, sep, rest = (
                piece.partition(">") if not piece.startswith("<!--") else ("", "", piece)
            )
            if sep:
                body, _, tail = rest.rpartition("<")
                parts.append(_markup(head + ">") + redact_text(body) + "<" + tail)
            else:
                parts.append(redact_text(rest))
        else:
            parts.append(_markup(piece))
    text = "".join(parts)
    if len(text) > max_chars:
        return text[:max_chars], True
    return text, False

"""The simulated libraries' books: a few thousand per catalogue, the same for a seed."""

from __future__ import annotations

import hashlib
import random
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Campus = Literal["main", "zhuhai"]

# Topics: (Chinese, English, Chinese Library Classification prefix). "Python" is on
# purpose in both, so one query finds many books in both scripts.
_TOPICS = (
    ("数据结构", "Data Structures", "TP311.12"),
    ("计算机网络", "Computer Networks", "TP393"),
    ("Python", "Python Programming", "TP311.56"),
    ("操作系统", "Operating Systems", "TP316"),
    ("线性代数", "Linear Algebra", "O151.2"),
    ("高等数学", "Calculus", "O13"),
    ("经济学原理", "Economics", "F0"),
    ("红楼梦", "Dream of the Red Chamber", "I207.411"),
    ("中国近代史", "Modern Chinese History", "K25"),
    ("管理学", "Management", "C93"),
    ("机器学习", "Machine Learning", "TP181"),
    ("C语言", "The C Language", "TP312"),
    ("Java", "Java Programming", "TP312JA"),
    ("英语写作", "English Writing", "H315"),
    ("有机化学", "Organic Chemistry", "O62"),
    ("新闻传播学", "Mass Communication", "G206"),
    ("华侨史", "Overseas Chinese History", "D634"),
    ("海洋生物学", "Marine Biology", "Q178.53"),
)
_CN_PREFIX = ("", "", "实用", "新编", "现代", "大学", "简明")
_CN_SUFFIX = ("教程", "导论", "基础", "研究", "习题集", "(第2版)", "入门", "原理与实践", "概论")
_EN_PREFIX = (
    "Introduction to",
    "Principles of",
    "Advanced",
    "Modern",
    "Practical",
    "Essentials of",
)
_EN_SUFFIX = ("", "", ": a guide", ": theory and practice", ", 3rd ed.")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘田董袁于"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红建文辉力志晓海"
_ROLES = ("著", "编著", "主编", "编", "译")
_EN_FIRST = ("John", "Mary", "David", "Susan", "Robert", "Linda", "James", "Karen", "Thomas")
_EN_LAST = ("Smith", "Brown", "Wilson", "Taylor", "Clark", "Lewis", "Walker", "Knuth", "Hall")
_CN_PUBLISHERS = (
    ("北京", "机械工业出版社", "111"),
    ("北京", "清华大学出版社", "302"),
    ("北京", "高等教育出版社", "04"),
    ("北京", "人民邮电出版社", "115"),
    ("广州", "暨南大学出版社", "81079"),
    ("上海", "复旦大学出版社", "309"),
    ("北京", "中华书局", "101"),
)
_EN_PUBLISHERS = (
    ("New York", "Springer", "0387"),
    ("Cambridge", "MIT Press", "0262"),
    ("Boston", "Addison-Wesley", "0201"),
    ("Oxford", "Oxford University Press", "0198"),
)
_LOCATIONS = {
    "main": ("中文图书借阅区(三楼)", "中文图书借阅区(四楼)", "外文图书借阅区", "过刊阅览室"),
    "zhuhai": ("珠海校区图书馆 中文书库", "珠海校区图书馆 外文书库", "珠海校区图书馆 阅览室"),
}
_ILAS_KINDS = ("中文图书", "外文图书", "阅览")


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy: where, its barcode, and its state (on the shelf, on loan until `due`,
    reading room only, or being processed)."""

    location: str
    barcode: str
    state: Literal["shelf", "loan", "reading", "processing"]
    due: date | None

    @property
    def on_shelf(self) -> bool:
        return self.state == "shelf"


@dataclass(frozen=True, slots=True)
class Book:
    """One book of a catalogue."""

    record_id: str
    title: str
    author: str
    place: str
    publisher: str
    year: int
    month: int
    pages: int
    size_cm: int
    isbn: str
    isbn_shown: str
    call_number: str
    price: str
    language: Literal["zh", "en"]
    notes: str
    copies: tuple[Copy, ...]
    # What searches match: normalised title, and title with author.
    title_key: str
    any_key: str

    @property
    def available(self) -> bool:
        return any(c.on_shelf for c in self.copies)

    @property
    def publication(self) -> str:
        """The publication line as WebPAC shows it ("北京 : 机械工业出版社, 2012.01")."""
        return f"{self.place} : {self.publisher}, {self.year}.{self.month:02d}"

    @property
    def physical(self) -> str:
        if self.language == "zh":
            return f"{self.pages}页 : 图 ; {self.size_cm}cm"
        return f"xii, {self.pages} p. : ill. ; {self.size_cm} cm"


def fold(text: str) -> str:
    """How the simulated catalogues compare text: NFKC, case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _isbn13(body12: str) -> str:
    check = (10 - sum((3 if i % 2 else 1) * int(c) for i, c in enumerate(body12)) % 10) % 10
    return body12 + str(check)


def _isbn10(body9: str) -> str:
    check = (11 - sum((10 - i) * int(c) for i, c in enumerate(body9)) % 11) % 11
    return body9 + ("X" if check == 10 else str(check))


def _isbn(rng: random.Random, group: str, publisher: str, year: int) -> tuple[str, str]:
    """A valid ISBN (ISBN-10 for books before 2007, as then) and how it is written."""
    title_digits = 9 - len(group) - len(publisher)
    title = "".join(str(rng.randrange(10)) for _ in range(title_digits))
    if year < 2007:
        isbn = _isbn10(group + publisher + title)
        return isbn, f"{group}-{publisher}-{title}-{isbn[-1]}"
    isbn = _isbn13("978" + group + publisher + title)
    return isbn, f"978-{group}-{publisher}-{title}-{isbn[-1]}"


def has_cover(seed: int, isbn: str) -> bool:
    """Whether the cover service has a cover for an ISBN (about 60 % of them)."""
    return hashlib.sha256(f"{seed}:{isbn}".encode()).digest()[0] < 154


class Catalogue:
    """The books of one catalogue, made from the seed; searched by title and author."""

    def __init__(self, seed: int, campus: Campus, size: int, today: date) -> None:
        self.seed = seed
        self.campus = campus
        self.today = today
        rng = random.Random(f"{seed}:{campus}")
        self.books: tuple[Book, ...] = tuple(self._book(rng, i) for i in range(size))
        self.by_id = {book.record_id: book for book in self.books}

    def _record_id(self, index: int) -> str:
        if self.campus == "main":
            return f"b{1000001 + index * 3:07d}"
        return str(300001 + index)

    def _book(self, rng: random.Random, index: int) -> Book:
        topic_zh, topic_en, klass = rng.choice(_TOPICS)
        zh = rng.random() < 0.65
        year = rng.randint(1985, 2013)
        if zh:
            title = rng.choice(_CN_PREFIX) + topic_zh + rng.choice(_CN_SUFFIX)
            person = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.randint(1, 2)))
            author = person + rng.choice(_ROLES)
            place, publisher, code = rng.choice(_CN_PUBLISHERS)
            isbn, shown = _isbn(rng, "7", code, year)
            notes = f"本书介绍{topic_zh}的基本概念、方法与应用。"
        else:
            title = f"{rng.choice(_EN_PREFIX)} {topic_en}{rng.choice(_EN_SUFFIX)}"
            author = f"{rng.choice(_EN_FIRST)} {rng.choice(_EN_LAST)}"
            place, publisher, code = rng.choice(_EN_PUBLISHERS)
            isbn, shown = _isbn(rng, code[0], code[1:], year)
            notes = "Includes bibliographical references and index."
        call_number = f"{klass}/{rng.randint(1, 999)}"
        copies = tuple(self._copy(rng, index, n) for n in range(rng.randint(1, 4)))
        return Book(
            record_id=self._record_id(index),
            title=title,
            author=author,
            place=place,
            publisher=publisher,
            year=year,
            month=rng.randint(1, 12),
            pages=rng.randint(80, 900),
            size_cm=rng.choice((19, 21, 24, 26)),
            isbn=isbn,
            isbn_shown=shown,
            call_number=call_number,
            price=f"CNY{rng.randint(15, 120)}.00" if zh else f"USD{rng.randint(30, 150)}.00",
            language="zh" if zh else "en",
            notes=notes,
            copies=copies,
            title_key=fold(title),
            any_key=fold(f"{title} {author}"),
        )

    def _copy(self, rng: random.Random, index: int, n: int) -> Copy:
        location = rng.choice(_LOCATIONS[self.campus])
        barcode = f"{'1' if self.campus == 'main' else '8'}{index:06d}{n:02d}"
        roll = rng.random()
        if roll < 0.5:
            return Copy(location, barcode, "shelf", None)
        if roll < 0.85:
            return Copy(location, barcode, "loan", self.today + timedelta(days=rng.randint(-5, 60)))
        if roll < 0.95:
            return Copy(location, barcode, "reading", None)
        return Copy(location, barcode, "processing", None)

    def search(self, query: str, title_only: bool, available_only: bool) -> list[Book]:
        """Books whose title (and author, unless title_only) hold every word of the query,
        newest first (WebPAC's SORT=D), then by record id."""
        words = fold(query).split()
        if not words:
            return []
        found = [
            book
            for book in self.books
            if all(w in (book.title_key if title_only else book.any_key) for w in words)
            and (book.available or not available_only)
        ]
        found.sort(key=lambda b: (-b.year, -b.month, b.record_id))
        return found

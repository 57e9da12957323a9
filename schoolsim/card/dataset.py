"""The deterministic, seeded students and their card transactions."""

import random
import re
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

CHINA = timezone(timedelta(hours=8), "CST")
STUID_RE = re.compile(r"^20[01]\d{7}$")

# Days of transactions before the day the dataset was created.
PAST_DAYS = 60
# Days generated after that day, so a long-running simulator keeps producing meals.
FUTURE_DAYS = 30
# Students kept generated at once (~80 KB each). Generating one again is cheap
# (deterministic by seed, ~2.5 ms), so the simulator's memory stays bounded (~40 MB
# of students) however many a long run touches.
CACHE_SIZE = 512

CONSUME = "持卡人消费"
DEPOSIT = "存款"
SUBSIDY = "补助"

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗梁宋郑谢韩唐冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程苏魏吕丁沈"
)
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉晨宇浩然思琪佳怡子涵欣悦嘉文俊杰梓轩"
)
_IDENTITIES = ("本科生", "研究生", "博士生")
_IDENTITY_WEIGHTS = (80, 17, 3)
_DEPARTMENTS = (
    "信息科学技术学院",
    "经济学院",
    "管理学院",
    "文学院",
    "理工学院",
    "医学院",
    "外国语学院",
    "新闻与传播学院",
    "法学院",
    "药学院",
    "生命科学技术学院",
    "华文学院",
)
_BREAKFAST_PLACES = ("第一饭堂", "第二饭堂", "超市")
_MEAL_PLACES = ("第一饭堂", "第二饭堂", "第三饭堂", "教工饭堂")
_DEPOSIT_PLACE = "卡务中心"
_SUBSIDY_PLACE = "财务处"
_LOW_BALANCE = Decimal("20.00")
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Txn:
    """One transaction at its real (China) time; amount negative for expenses."""

    real: datetime
    way: str
    position: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Row:
    """One transaction as the card center shows it (displayed clock, running balance)."""

    time: datetime
    way: str
    position: str
    amount: Decimal
    balance_after: Decimal
    count: int


@dataclass
class Student:
    """A generated student: identity, starting balance and base transaction schedule."""

    stuid: str
    name: str
    card_number: str
    identity: str
    department: str
    initial_balance: Decimal
    initial_count: int
    txns: list[Txn]
    # Balance after each base transaction, aligned with txns.
    balances: list[Decimal]
    # POSIX timestamps of txns, for bisecting on "now".
    stamps: list[float]


@dataclass
class _Extra:
    """Runtime additions to a student that must survive cache eviction."""

    txns: list[Txn] = field(default_factory=list)


def exists(stuid: str) -> bool:
    """A student exists iff the number looks like a 2000..2019 student number."""
    return STUID_RE.fullmatch(stuid) is not None


def default_password(stuid: str) -> str:
    """The default password: the last 6 digits of the student number."""
    return stuid[-6:]


def money(value: Decimal) -> str:
    """Money as the card center prints it: two decimals, expenses negative."""
    return f"{value.quantize(_CENT):.2f}"


def _at(day: date, rng: random.Random, start: time, end: time) -> datetime:
    """A random second between start and end on day, China time."""
    lo = start.hour * 3600 + start.minute * 60
    hi = end.hour * 3600 + end.minute * 60
    base = datetime.combine(day, time(0, 0), tzinfo=CHINA)
    return base + timedelta(seconds=rng.randint(lo, hi))


def _cents(rng: random.Random, lo: int, hi: int) -> Decimal:
    """A random amount between lo and hi cents, as Decimal yuan."""
    return Decimal(rng.randint(lo, hi)) / 100


def generate(seed: int, stuid: str, anchor: date) -> Student:
    """Build one student from (seed, stuid): identity and PAST_DAYS+FUTURE_DAYS of meals."""
    rng = random.Random(f"{seed}:{stuid}")
    name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
    card_number = str(rng.randint(100000, 999999))
    identity = rng.choices(_IDENTITIES, _IDENTITY_WEIGHTS)[0]
    department = rng.choice(_DEPARTMENTS)
    initial = _cents(rng, 2000, 30000)
    initial_count = rng.randint(100, 2000)
    subsidy = Decimal(rng.choice((30, 50, 80)))
    balance = initial
    txns: list[Txn] = []
    balances: list[Decimal] = []

    def add(txn: Txn) -> None:
        nonlocal balance
        balance += txn.amount
        txns.append(txn)
        balances.append(balance)

    first = anchor - timedelta(days=PAST_DAYS)
    for offset in range(PAST_DAYS + 1 + FUTURE_DAYS):
        day = first + timedelta(days=offset)
        if day.day == 1:
            add(Txn(_at(day, rng, time(6, 0), time(6, 30)), SUBSIDY, _SUBSIDY_PLACE, subsidy))
        meals: list[tuple[datetime, str, Decimal]] = []
        # The random draws happen in a fixed order whether or not a meal is eaten,
        # so one day's choices never shift the next day's.
        for chance, start, end, places, lo, hi in (
            (0.5, time(7, 0), time(8, 30), _BREAKFAST_PLACES, 300, 800),
            (0.9, time(11, 30), time(12, 50), _MEAL_PLACES, 500, 1500),
            (0.8, time(17, 30), time(19, 0), _MEAL_PLACES, 500, 1500),
        ):
            eats = rng.random() < chance
            when = _at(day, rng, start, end)
            place = rng.choice(places)
            amount = _cents(rng, lo, hi)
            if eats:
                meals.append((when, place, amount))
        for when, place, amount in meals:
            topup = Decimal(rng.choice((100, 200)))
            before = timedelta(seconds=rng.randint(30, 600))
            if balance - amount < _LOW_BALANCE:
                add(Txn(when - before, DEPOSIT, _DEPOSIT_PLACE, topup))
            add(Txn(when, CONSUME, place, -amount))
    return Student(
        stuid=stuid,
        name=name,
        card_number=card_number,
        identity=identity,
        department=department,
        initial_balance=initial,
        initial_count=initial_count,
        txns=txns,
        balances=balances,
        stamps=[t.real.timestamp() for t in txns],
    )


class Dataset:
    """All students of one seed, generated lazily and cached, plus runtime changes."""

    def __init__(self, seed: int, today: date) -> None:
        """Anchor the schedules on today (the real China date at start-up)."""
        self.seed = seed
        self.anchor = today
        self._cache: OrderedDict[str, Student] = OrderedDict()
        self._extras: dict[str, _Extra] = {}
        self._passwords: dict[str, str] = {}

    def student(self, stuid: str) -> Student | None:
        """The student with this number, or None if there is none."""
        if not exists(stuid):
            return None
        st = self._cache.get(stuid)
        if st is None:
            st = generate(self.seed, stuid, self.anchor)
            self._cache[stuid] = st
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(stuid)
        return st

    def password(self, stuid: str) -> str:
        """The student's current password."""
        return self._passwords.get(stuid, default_password(stuid))

    def password_is_default(self, stuid: str) -> bool:
        """Whether the password was never changed (or changed back to the default)."""
        return self.password(stuid) == default_password(stuid)

    def set_password(self, stuid: str, password: str) -> None:
        """Change a student's password (kept in memory)."""
        self._passwords[stuid] = password

    def _history(self, st: Student, now: datetime) -> tuple[list[Txn], list[Decimal]]:
        """Visible transactions at now (chronological) and the balance after each."""
        k = bisect_right(st.stamps, now.timestamp())
        extra = self._extras.get(st.stuid)
        if extra is None or not extra.txns:
            return st.txns[:k], st.balances[:k]
        merged = sorted(
            [*st.txns[:k], *(t for t in extra.txns if t.real <= now)], key=lambda t: t.real
        )
        balances: list[Decimal] = []
        balance = st.initial_balance
        for txn in merged:
            balance += txn.amount
            balances.append(balance)
        return merged, balances

    def balance(self, st: Student, now: datetime) -> Decimal:
        """The card balance at real time now."""
        _, balances = self._history(st, now)
        return balances[-1] if balances else st.initial_balance

    def rows(
        self, st: Student, now: datetime, offset_minutes: int, first: date, last: date
    ) -> list[Row]:
        """Visible rows whose displayed date is in first..last, newest first."""
        offset = timedelta(minutes=offset_minutes)
        lo = datetime.combine(first, time(0, 0), tzinfo=CHINA) - offset
        hi = datetime.combine(last + timedelta(days=1), time(0, 0), tzinfo=CHINA) - offset
        txns, balances = self._history(st, now)
        rows: list[Row] = []
        for i in range(len(txns) - 1, -1, -1):
            txn = txns[i]
            if txn.real >= hi:
                continue
            if txn.real < lo:
                break
            rows.append(
                Row(
                    time=txn.real + offset,
                    way=txn.way,
                    position=txn.position,
                    amount=txn.amount,
                    balance_after=balances[i],
                    count=st.initial_count + i + 1,
                )
            )
        return rows

    def spend(self, st: Student, amount: Decimal, position: str, now: datetime) -> Decimal:
        """Record a purchase at now; returns the new balance (ValueError if too poor)."""
        if amount > self.balance(st, now):
            raise ValueError("insufficient balance")
        extra = self._extras.setdefault(st.stuid, _Extra())
        extra.txns.append(Txn(now, CONSUME, position, -amount))
        return self.balance(st, now)

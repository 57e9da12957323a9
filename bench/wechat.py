"""The wechat workload: 500 followers of the official account at lunchtime
(`python -m bench run --workloads wechat`).

jnufm serves the account itself (channels/wechat/): every question is a WeChat delivery
(`schoolsim.wechat.follower.WeChatDelivery`: safe mode, real signatures and AES, a 5 s
timeout and 3 retries, as WeChat's servers), answered passively within WeChat's 5 s or,
later, by customer message through the simulated official-account API.

Phases, on a server of its own (`bench/configs/wechat.yaml`: the server's defaults plus
the account) with a fresh database, against the simulator's `jnu-2013` profile:

1. Bind (not in the lunchtime figures): each follower sends 绑定, takes the ticket from
   the link of the reply and posts the bind page's form (POST /v1/wechat/bind, the card
   and the academic office passwords): a cold login per student at both systems, which
   also leaves the student's balance and this term's timetable in the cache. At most
   `BIND_LANES` binds at once; a bind the school failed is tried again (`BIND_TRIES`).
2. Lunchtime: the plan's questions (fixed by seed) go out over `lanes` concurrent
   deliveries, the followers drawn Zipf (s = 1.1) over their popularity, at most
   `MAX_PER_FOLLOWER` questions each. A follower waits for its answer (the passive reply,
   or the customer message after "正在查询…") and `THINK_S` more before its next
   question (WeChat's per-follower allowance, `wechat.per_follower_per_min` 20, is never
   the limit). No new question after the time cap; those asked are followed to the end.

Cold questions (`COLD_SHARE` of the plan, flagged by seed): a question whose answer the
server holds for nobody, so that the school must be asked: the follower's first
today's spending (before its first 7 days' spending, which holds today), 7 days'
spending, exams or grades (bind asked none of them), in an order drawn per follower;
once a follower has asked all four, a book search for a title word that no question
of the plan searched before (the catalogue's answer is shared by every student). The
other questions are warm: the balance and the timetable (bind fetched them), and what
the follower asked before (its own earlier book words too), drawn with `WARM_MIX`'s
weights among those it has. Warm is not free of the school: a balance or today's list
older than `fresh_s` (60 s) is asked again (the server waits `cache.stale_wait_s` for
it before the older answer stands in); the figures count the questions that reached
the school from the server's cache metrics (`jnufm_cache_lookups`) and the school's
own counters.

Each question is classified: answered passively on the first delivery; passively on a
retry (the first delivery got no answer within 5 s); told to wait, then answered by
customer message (one question in flight per follower: the follower's next customer
message is its answer); lost (no answer within `ANSWER_DEADLINE_S`); refused (the
"too often" reply) or an error (an error text, a refused reply, a status not 200).
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import re
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import httpx
from pydantic import SecretStr

from bench import gateway, load, procs
from bench.procs import CARD, CONFIGS, School, System
from channels.wechat.config import WeChatAccount
from channels.wechat.replies import pending_text
from channels.wechat.responder import TOO_OFTEN
from channels.wechat.simulated_platform import OpenedReply, SimulatedPlatform
from harness.processes import http_json
from schoolsim.wechat.follower import Exchange, WeChatDelivery, customer_messages

OVERLAY: Final = CONFIGS / "wechat.yaml"
KEY: Final = "wechat"
SEED: Final = 2013
ZIPF_S: Final = 1.1
COLD_SHARE: Final = 0.2
# A student asking 25 questions over lunch asks a lot; more would be a script.
MAX_PER_FOLLOWER: Final = 25
# After an answer, before the follower's next question: reading it (and 20 a minute
# is the server's per-follower allowance: 3 s keeps every follower under it).
THINK_S: Final = 3.0
# A question without an answer by then is lost.
ANSWER_DEADLINE_S: Final = 60.0
# How often a follower told to wait looks for its customer message.
POLL_S: Final = 0.5
BIND_LANES: Final = 8
BIND_TRIES: Final = 3
WECHAT_TIMEOUT_S: Final = 5.0
WECHAT_RETRIES: Final = 3
# The systems a question may reach (the simulator's names).
SCHOOL_SYSTEMS: Final = (CARD, "academic", "opac")

# The account (bench/configs/wechat.yaml) and its secrets: made-up values of this
# benchmark, written to files beside the generated config.
ACCOUNT: Final = "jnu"
APP_ID: Final = "wx2013benchlunch01"
TOKEN: Final = "jnufmBenchLunchToken2013"  # noqa: S105
AES_KEY: Final = "LunchtimeBenchmarkKey0123456789abcdefghijkG"
APP_SECRET: Final = "be4c2013lunch0000000000000000001"  # noqa: S105
SECRET_FILES: Final = {
    "wechat-token": TOKEN,
    "wechat-encoding-aes-key": AES_KEY,
    "wechat-app-secret": APP_SECRET,
}

# What a follower types for each kind of question.
TEXTS: Final = {
    "balance": "余额",
    "timetable": "课表",
    "today": "今日消费记录",
    "recent": "近7天消费",
    "exams": "考试",
    "grades": "成绩",
}
# The kinds a bind leaves in the cache, and those it does not (asked cold once).
BOUND_WARM: Final = ("balance", "timetable")
COLD_KINDS: Final = ("today", "exams", "grades")
# Weights of a warm question's kind (among those the follower can ask warm): the
# balance most, as in 2013's log; "book" re-asks one of the follower's own words.
WARM_MIX: Final = {
    "balance": 0.55,
    "timetable": 0.15,
    "today": 0.12,
    "exams": 0.05,
    "grades": 0.05,
    "recent": 0.03,
    "book": 0.05,
}
# A reply that carries the answer to each kind (anything else is an error text).
ANSWERS: Final = {
    "balance": re.compile(r"余额为"),
    "timetable": re.compile(r"周|课|节"),
    "today": re.compile(r"今日消费记录"),
    "recent": re.compile(r"天消费记录"),
    "exams": re.compile(r"考试"),
    "grades": re.compile(r"成绩|绩点"),
    "book": re.compile(r"图书|没有找到|《"),
}


@dataclass(frozen=True)
class Size:
    """How big a run is: followers, questions in the plan, the time cap, concurrent
    deliveries."""

    followers: int
    questions: int
    seconds: float
    lanes: int


FULL: Final = Size(500, 3000, 120, 40)
QUICK: Final = Size(40, 120, 20, 10)


@dataclass(frozen=True)
class Ask:
    """One question of the plan (`student`: the follower's index, as gateway.Scheduler
    wants it)."""

    student: int
    kind: str
    text: str
    cold: bool


@dataclass(frozen=True)
class Plan:
    """The followers (student numbers, openids) and their questions, in order."""

    students: list[str]
    openids: list[str]
    asks: list[Ask]

    def facts(self) -> dict[str, Any]:
        per = collections.Counter(a.student for a in self.asks)
        top = per.most_common(1)[0][1] if per else 0
        return {
            "followers": len(self.students),
            "questions": len(self.asks),
            "cold": sum(1 for a in self.asks if a.cold),
            "by_kind": dict(collections.Counter(a.kind for a in self.asks).most_common()),
            "cold_by_kind": dict(
                collections.Counter(a.kind for a in self.asks if a.cold).most_common()
            ),
            "zipf_s": ZIPF_S,
            "seed": SEED,
            "max_per_follower": MAX_PER_FOLLOWER,
            "top_follower_questions": top,
            "followers_asking": len(per),
            "followers_asking_once": sum(1 for n in per.values() if n == 1),
        }


def make_plan(followers: int, questions: int, seed: int = SEED) -> Plan:
    """`followers` students (the simulator's `20[01]NNNNNNN`), `questions` questions drawn
    Zipf over them (at most MAX_PER_FOLLOWER each), COLD_SHARE of them cold."""
    rng = random.Random(seed)
    students = [str(n) for n in rng.sample(range(2000000000, 2020000000), followers)]
    openids = [f"oLunch{i:06d}{rng.getrandbits(64):016x}"[:28] for i in range(followers)]
    popularity = list(range(followers))
    rng.shuffle(popularity)
    per: collections.Counter[int] = collections.Counter()
    order: list[int] = []
    draws = 0
    wanted = min(questions, followers * MAX_PER_FOLLOWER)
    while len(order) < wanted:
        for k in load.zipf_sequence(followers, wanted, ZIPF_S, seed + draws):
            who = popularity[k]
            if per[who] < MAX_PER_FOLLOWER and len(order) < wanted:
                per[who] += 1
                order.append(who)
        draws += 1
    words = iter(load.search_vocabulary(seed))
    cold_left = {i: _cold_order(rng) for i in range(followers)}
    asked: dict[int, set[str]] = {i: set(BOUND_WARM) for i in range(followers)}
    own_words: dict[int, list[str]] = collections.defaultdict(list)
    asks: list[Ask] = []
    for who in order:
        cold = rng.random() < COLD_SHARE
        if cold:
            if cold_left[who]:
                kind = cold_left[who].pop(0)
                text = TEXTS[kind]
            else:
                kind, word = "book", next(words)
                own_words[who].append(word)
                text = f"图书 {word}"
        else:
            kinds = [k for k in WARM_MIX if k in asked[who] or (k == "book" and own_words[who])]
            kind = rng.choices(kinds, [WARM_MIX[k] for k in kinds])[0]
            text = f"图书 {rng.choice(own_words[who])}" if kind == "book" else TEXTS[kind]
        asked[who].add(kind)
        asks.append(Ask(who, kind, text, cold))
    return Plan(students, openids, asks)


def _cold_order(rng: random.Random) -> list[str]:
    """A follower's cold kinds in the order it asks them: 7 days' spending after today's
    (it holds today: asked first, today's would be warm)."""
    kinds = list(COLD_KINDS)
    rng.shuffle(kinds)
    kinds.insert(rng.randint(kinds.index("today") + 1, len(kinds)), "recent")
    return kinds


# --- the account ------------------------------------------------------------------


def account() -> WeChatAccount:
    return WeChatAccount(
        name=ACCOUNT,
        app_id=APP_ID,
        mode="safe",
        token=SecretStr(TOKEN),
        encoding_aes_key=SecretStr(AES_KEY),
    )


def start_jnufm(tmp: Path, school: School, processes: int, database_url: str | None) -> System:
    """jnufm with the account (bench/configs/wechat.yaml), its secrets in files beside
    its config, the simulator's WeChat API; the app registered at the simulator."""
    http_json(school.url + "/__sim/wechat/apps", {"app_id": APP_ID, "secret": APP_SECRET})
    workdir = tmp / KEY
    workdir.mkdir(parents=True, exist_ok=True)
    for name, value in SECRET_FILES.items():
        path = workdir / name
        path.write_text(value + "\n")
        path.chmod(0o600)
    extra = {"wechat": {"api_base_url": f"{school.url}/wechat-api"}}
    return procs.start_jnufm(tmp, KEY, OVERLAY, school.url, processes, database_url, extra)


# --- the load ---------------------------------------------------------------------


@dataclass
class Bound:
    """One follower's bind: how it ended, how long it took, the answers on the way."""

    follower: int
    ok: bool
    seconds: float
    statuses: list[str]


@dataclass
class Question:
    """What one question got."""

    ask: Ask
    outcome: str = ""  # passive_first, passive_retry, customer, lost, limited, error
    answer_s: float | None = None  # from the first delivery to the answer
    attempts: list[tuple[int | None, float]] = field(default_factory=list)
    detail: str = ""  # an error's text (its first characters) or status


def reply_text(reply: OpenedReply) -> str:
    if reply.msg_type == "news":
        return "\n".join(f"《{a.title}》 {a.description}" for a in reply.articles)
    return reply.content


def judge(kind: str, text: str) -> str:
    """ "answer", "pending", "limited" or "error" for a reply's text."""
    if text == pending_text():
        return "pending"
    if text == TOO_OFTEN:
        return "limited"
    return "answer" if ANSWERS[kind].search(text) else "error"


async def _bind_one(delivery: WeChatDelivery, http: httpx.AsyncClient, plan: Plan, i: int) -> Bound:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    statuses: list[str] = []
    student = plan.students[i]
    for _ in range(BIND_TRIES):
        try:
            exchange = await delivery.say(plan.openids[i], "绑定")
        except httpx.HTTPError as exc:
            statuses.append(f"wechat {type(exc).__name__}")
            continue
        found = None
        if exchange.reply is not None:
            found = re.search(r"#ticket=([A-Za-z0-9_.~-]+)", exchange.reply.content)
        if found is None:
            statuses.append("no bind link")
            continue
        form = {
            "ticket": found.group(1),
            "student_id": student,
            "password": student[-6:],
            "academic_password": student[-6:],
        }
        try:
            response = await http.post("/v1/wechat/bind", data=form, timeout=60)
        except httpx.HTTPError as exc:
            statuses.append(type(exc).__name__)
            continue
        statuses.append(str(response.status_code))
        if response.status_code == 201:
            return Bound(i, True, loop.time() - t0, statuses)
        if response.status_code < 500 and response.status_code != 429:
            break  # refused for good (a wrong password would be a bug of the plan)
    return Bound(i, False, loop.time() - t0, statuses)


async def _bind_all(url: str, school_url: str, plan: Plan, lanes: int) -> list[Bound]:
    limits = httpx.Limits(max_connections=lanes * 2, max_keepalive_connections=lanes * 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        delivery = WeChatDelivery(
            SimulatedPlatform(account()),
            f"{url}/wechat",
            http,
            WECHAT_TIMEOUT_S,
            WECHAT_RETRIES,
            simulator_url=school_url,
        )
        todo = iter(range(len(plan.students)))
        done: list[Bound] = []

        async def lane() -> None:
            for i in todo:
                done.append(await _bind_one(delivery, http, plan, i))

        await asyncio.gather(*(lane() for _ in range(lanes)))
    return sorted(done, key=lambda b: b.follower)


def bind(url: str, school_url: str, plan: Plan, lanes: int = BIND_LANES) -> list[Bound]:
    """Bind every follower of the plan, `lanes` at once; how each bind ended."""
    return asyncio.run(_bind_all(url, school_url, plan, lanes))


async def _lunch(
    url: str, school_url: str, plan: Plan, bound: set[int], lanes: int, seconds: float
) -> Lunch:
    loop = asyncio.get_running_loop()
    asks = [a for a in plan.asks if a.student in bound]
    started = time.monotonic()
    # The gateway's scheduler reads nothing of an ask but its `student`.
    scheduler = gateway.Scheduler(cast(list[gateway.Ask], asks), started + seconds)
    questions: list[Question] = []
    # Customer messages each follower had when its question went out.
    seen: collections.Counter[int] = collections.Counter()
    extra_messages = 0
    limits = httpx.Limits(max_connections=lanes * 3, max_keepalive_connections=lanes * 3)
    lag = LoopLag()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        delivery = WeChatDelivery(
            SimulatedPlatform(account()),
            f"{url}/wechat",
            http,
            WECHAT_TIMEOUT_S,
            WECHAT_RETRIES,
            simulator_url=school_url,
        )
        followups: set[asyncio.Task[None]] = set()
        watch = asyncio.ensure_future(lag.watch())

        async def release(index: int) -> None:
            await asyncio.sleep(THINK_S)
            await scheduler.done(index)

        async def customer(index: int, q: Question, sent_wall: float, t0: float) -> None:
            """Wait for the follower's next customer message: its answer."""
            nonlocal extra_messages
            who = q.ask.student
            openid = plan.openids[who]
            give_up = t0 + ANSWER_DEADLINE_S
            while True:
                try:
                    found = await customer_messages(http, school_url, openid, APP_ID)
                except httpx.HTTPError:
                    found = []
                if len(found) > seen[who]:
                    extra_messages += len(found) - seen[who] - 1
                    message = found[seen[who]]
                    seen[who] = len(found)
                    text = message.content or "\n".join(
                        f"《{a.title}》 {a.description}" for a in message.articles
                    )
                    verdict = judge(q.ask.kind, text)
                    q.answer_s = max(0.0, message.at.timestamp() - sent_wall)
                    if verdict == "answer":
                        q.outcome = "customer"
                    else:
                        q.outcome, q.detail = "customer_error", text[:24]
                    break
                if loop.time() >= give_up:
                    q.outcome = "lost"
                    break
                await asyncio.sleep(POLL_S)
            await release(index)

        async def lane() -> None:
            while True:
                index = await scheduler.next()
                if index is None:
                    return
                ask = asks[index]
                q = Question(ask)
                questions.append(q)
                sent_wall, t0 = time.time(), loop.time()
                try:
                    exchange: Exchange = await delivery.say(plan.openids[ask.student], ask.text)
                except httpx.HTTPError as exc:
                    q.outcome, q.detail = "error", type(exc).__name__
                    followups.add(asyncio.ensure_future(release(index)))
                    continue
                took = loop.time() - t0
                q.attempts = [(a.status, round(a.elapsed_s, 4)) for a in exchange.attempts]
                verdict = "none"
                if exchange.refused:
                    q.outcome, q.detail = "error", exchange.refused[:40]
                elif exchange.reply is not None:
                    verdict = judge(ask.kind, reply_text(exchange.reply))
                    if verdict == "answer":
                        first = len(exchange.attempts) == 1
                        q.outcome = "passive_first" if first else "passive_retry"
                        q.answer_s = took
                    elif verdict == "limited":
                        q.outcome = "limited"
                    elif verdict == "error":
                        q.outcome, q.detail = "error", reply_text(exchange.reply)[:24]
                if q.outcome:
                    followups.add(asyncio.ensure_future(release(index)))
                else:
                    # Told to wait, or no passive reply at all: the answer may still
                    # come by customer message.
                    followups.add(asyncio.ensure_future(customer(index, q, sent_wall, t0)))

        await asyncio.gather(*(lane() for _ in range(lanes)))
        if followups:
            await asyncio.gather(*followups)
        watch.cancel()
    return Lunch(
        questions, time.monotonic() - started, scheduler.capped, extra_messages, lag.worst_s
    )


class LoopLag:
    """How late the load generator's own event loop ran (a late loop would make a reply
    in time look late)."""

    STEP_S: Final = 0.1

    def __init__(self) -> None:
        self.worst_s = 0.0

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.STEP_S)
            self.worst_s = max(self.worst_s, loop.time() - t0 - self.STEP_S)


@dataclass
class Lunch:
    """What lunchtime gave: every question, the seconds taken, whether the cap cut the
    plan short, customer messages that matched no question, the load generator's worst
    event loop lag."""

    questions: list[Question]
    seconds: float
    capped: bool
    unmatched_messages: int
    loop_lag_s: float


def lunch(
    url: str, school_url: str, plan: Plan, bound: set[int], lanes: int, seconds: float
) -> Lunch:
    """The plan's questions of bound followers over `lanes` concurrent deliveries for at
    most `seconds` (then the questions asked are followed to their answer or deadline)."""
    return asyncio.run(_lunch(url, school_url, plan, bound, lanes, seconds))


# --- figures ----------------------------------------------------------------------


OUTCOMES: Final = (
    "passive_first",
    "passive_retry",
    "customer",
    "lost",
    "limited",
    "error",
    "customer_error",
)


def percentile(values: Sequence[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    k = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[k], 3)


def bind_figures(binds: Sequence[Bound], seconds: float) -> dict[str, Any]:
    took = [b.seconds for b in binds if b.ok]
    return {
        "followers": len(binds),
        "bound": sum(1 for b in binds if b.ok),
        "not_bound": sum(1 for b in binds if not b.ok),
        "seconds": round(seconds, 1),
        "binds_per_s": round(len(took) / seconds, 2) if seconds else None,
        "p50_s": percentile(took, 0.5),
        "p99_s": percentile(took, 0.99),
        "tries": sum(len(b.statuses) for b in binds),
        "statuses": dict(collections.Counter(s for b in binds for s in b.statuses).most_common()),
    }


def lunch_figures(questions: Sequence[Question], seconds: float) -> dict[str, Any]:
    outcomes = collections.Counter(q.outcome for q in questions)
    answered = [
        q
        for q in questions
        if q.answer_s is not None and q.outcome in ("passive_first", "passive_retry", "customer")
    ]
    times = [q.answer_s for q in answered if q.answer_s is not None]
    replied = [s for q in questions for status, s in q.attempts if status is not None]
    unanswered = [s for q in questions for status, s in q.attempts if status is None]
    cold = [q for q in questions if q.ask.cold]
    warm = [q for q in questions if not q.ask.cold]

    def split(group: Sequence[Question]) -> dict[str, Any]:
        got = collections.Counter(q.outcome for q in group)
        ts = [
            q.answer_s
            for q in group
            if q.answer_s is not None
            and q.outcome in ("passive_first", "passive_retry", "customer")
        ]
        return {
            "asked": len(group),
            "outcomes": {k: got[k] for k in OUTCOMES if got[k]},
            "p50_s": percentile(ts, 0.5),
            "p95_s": percentile(ts, 0.95),
            "p99_s": percentile(ts, 0.99),
        }

    return {
        "asked": len(questions),
        "seconds": round(seconds, 1),
        "answers_per_s": round(len(answered) / seconds, 2) if seconds else None,
        "outcomes": {k: outcomes[k] for k in OUTCOMES},
        "answered": len(answered),
        "p50_s": percentile(times, 0.5),
        "p95_s": percentile(times, 0.95),
        "p99_s": percentile(times, 0.99),
        "max_s": round(max(times), 3) if times else None,
        "deliveries": len(replied) + len(unanswered),
        "deliveries_replied": len(replied),
        "deliveries_unanswered_within_5s": len(unanswered),
        "longest_passive_reply_s": round(max(replied), 3) if replied else None,
        # The questions whose first delivery got no reply within 5 s, by how they ended.
        "late_first_delivery": dict(
            collections.Counter(
                f"{q.outcome} ({q.ask.kind})"
                for q in questions
                if q.attempts and q.attempts[0][0] is None
            ).most_common()
        ),
        "cold": split(cold),
        "warm": split(warm),
        "by_kind": {
            kind: split([q for q in questions if q.ask.kind == kind])
            for kind in sorted({q.ask.kind for q in questions})
        },
        "errors": dict(
            collections.Counter(
                f"{q.outcome}: {q.detail}" for q in questions if q.detail
            ).most_common(10)
        ),
    }


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# The server's counters the figures read (Prometheus names, `_total` added).
COUNTERS: Final = (
    "jnufm_cache_lookups_total",
    "jnufm_school_requests_total",
    "jnufm_wechat_messages_total",
    "jnufm_wechat_customer_messages_total",
    "jnufm_wechat_access_tokens_fetched_total",
    "jnufm_wechat_refused_total",
    # From the handler's start to the reply written, as the server times its deadline
    # (buckets: 2.5, 5, 10 s): with the access lines' time (from the first byte read),
    # it tells a late reply's time before the handler from time in it.
    "jnufm_wechat_reply_seconds_bucket",
)


def server_counters(url: str) -> dict[str, dict[str, float]]:
    """The server's counters from /metrics: name -> "label=value,..." -> value."""
    with urllib.request.urlopen(url + "/metrics", timeout=15) as resp:
        text = resp.read().decode()
    out: dict[str, dict[str, float]] = {name: {} for name in COUNTERS}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None or found.group(1) not in out:
            continue
        labels = ",".join(
            f"{k}={v}" for k, v in _LABEL.findall(found.group(2) or "") if k != "account"
        )
        out[found.group(1)][labels] = out[found.group(1)].get(labels, 0.0) + float(found.group(3))
    return out


def counters_delta(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, values in after.items():
        delta = {k: int(v - before.get(name, {}).get(k, 0.0)) for k, v in values.items()}
        out[name.removesuffix("_total")] = {k: v for k, v in sorted(delta.items()) if v}
    return out


def cache_by_kind(lookups: dict[str, int]) -> dict[str, dict[str, int]]:
    """Cache lookups per kind of data: memory hits, and those that found no fresh answer
    at any level (the school is asked, or an older answer stands in)."""
    out: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.Counter())
    for labels, n in lookups.items():
        got = dict(part.split("=", 1) for part in labels.split(",") if "=" in part)
        kind, level, outcome = got.get("kind", "?"), got.get("level"), got.get("outcome")
        if level == "memory":
            out[kind]["lookups"] += n
            if outcome == "hit":
                out[kind]["memory_hit"] += n
        elif level == "db" and outcome == "miss":
            out[kind]["not_fresh"] += n
        elif level == "shared" and outcome == "hit":
            out[kind]["shared_hit"] += n
        elif level == "db" and outcome == "hit":
            out[kind]["db_hit"] += n
        elif outcome == "stale":
            out[kind]["stale_served"] += n
    return {k: dict(v) for k, v in sorted(out.items())}


def school_counts(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """One simulated system's counters over a phase."""
    paths = collections.Counter(after.get("requests_by_path") or {})
    paths.subtract(collections.Counter(before.get("requests_by_path") or {}))
    out: dict[str, Any] = {
        "requests": after["requests"] - before["requests"],
        "logins_ok": after.get("logins_ok", 0) - before.get("logins_ok", 0),
        "logins_failed": after.get("logins_failed", 0) - before.get("logins_failed", 0),
        "by_path": {p: n for p, n in paths.most_common() if n},
    }
    for key in ("searches", "records", "captcha_fetches"):
        if key in after:
            out[key] = after[key] - before.get(key, 0)
    return out


_ACCESS = re.compile(
    r"^(\S+ \S+) \w+ \[(\d+)\] jnufm\.access: (\d{3}) POST /wechat\S* ([\d.]+)ms .*"
    r"outcome=(\S+)"
)
_PROBLEM = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) \[\d+\] (\S+): (.{0,120})")


def server_log(path: Path, start: int) -> dict[str, Any]:
    """The server's own view of lunchtime from its log (from byte `start`): the WeChat
    deliveries' times from the request's first byte read to the reply written (access
    lines), the slowest, and the warnings and errors by logger and text."""
    with path.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    times: list[float] = []
    slow: list[tuple[float, str]] = []
    problems: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        found = _ACCESS.match(line)
        if found is not None:
            ms = float(found.group(4))
            times.append(ms / 1000)
            slow.append(
                (
                    ms,
                    f"{found.group(1)} [{found.group(2)}] {found.group(3)} "
                    f"{ms:.0f} ms {found.group(5)}",
                )
            )
            continue
        problem = _PROBLEM.match(line)
        if problem is not None:
            problems[f"{problem.group(1)} {problem.group(2)}: {problem.group(3)}"] += 1
    slow.sort(reverse=True)
    return {
        "deliveries": len(times),
        "p50_s": percentile(times, 0.5),
        "p99_s": percentile(times, 0.99),
        "max_s": round(max(times), 3) if times else None,
        "over_4_5_s": sum(1 for t in times if t > 4.5),
        "over_5_s": sum(1 for t in times if t > 5.0),
        "slowest": [line for _, line in slow[:8]],
        "problems": dict(problems.most_common(12)),
    }


def school_snapshot(school: School) -> dict[str, dict[str, Any]]:
    return {name: school.stats(name) for name in (*SCHOOL_SYSTEMS, KEY)}


# --- the run ----------------------------------------------------------------------


def measure(
    system: System,
    school: School,
    size: Size,
    log: Callable[[str], None],
    school_profile: str = "jnu-2013",
) -> dict[str, Any]:
    """Bind the plan's followers, then lunchtime; every figure."""
    for name in SCHOOL_SYSTEMS:
        if school.profile_of(name) != school_profile:
            school.use_profile(school_profile, name)
    gateway.wait_serving(system)
    plan = make_plan(size.followers, size.questions)
    log(f"  wechat: binding {size.followers} followers ({BIND_LANES} at once)")
    before_bind = school_snapshot(school)
    t0 = time.monotonic()
    binds = bind(system.url, school.url, plan)
    bind_s = time.monotonic() - t0
    after_bind = school_snapshot(school)
    bound = {b.follower for b in binds if b.ok}
    binding = bind_figures(binds, bind_s)
    binding["school"] = {
        name: school_counts(before_bind[name], after_bind[name]) for name in SCHOOL_SYSTEMS
    }
    log(
        f"  wechat: {binding['bound']} of {binding['followers']} bound in {binding['seconds']} s "
        f"({binding['binds_per_s']}/s; p50 {binding['p50_s']} s); lunchtime"
    )
    for name in (*SCHOOL_SYSTEMS, KEY):
        school.wait_idle(systems=(name,))
    # Counters zeroed (peaks too); the school's sessions and the apps are kept.
    for name in (*SCHOOL_SYSTEMS, KEY):
        http_json(school.side(name) + "/reset", {})
    before_school = school_snapshot(school)
    before = server_counters(system.url)
    before_status = system.statuses()
    log_path = Path(system.extra["log_path"])
    log_start = log_path.stat().st_size
    ran = lunch(system.url, school.url, plan, bound, size.lanes, size.seconds)
    questions, seconds, capped = ran.questions, ran.seconds, ran.capped
    after_school = school_snapshot(school)
    time.sleep(0.5)
    counters = counters_delta(before, server_counters(system.url))
    got = lunch_figures(questions, seconds)
    got["unmatched_customer_messages"] = ran.unmatched_messages
    got["load_generator_loop_lag_max_s"] = round(ran.loop_lag_s, 3)
    sent = [a for a in plan.asks if a.student in bound]
    notes: list[str] = []
    if capped:
        notes.append(f"capped at {int(size.seconds)} s: {len(questions)} of {len(sent)} asked")
    if binding["not_bound"]:
        notes.append(f"{binding['not_bound']} followers not bound: their questions not asked")
    wechat_api = after_school[KEY]
    out: dict[str, Any] = {
        "system": "default",
        "workload": KEY,
        "tool": "bench.wechat",
        "command": (
            f"{size.followers} followers, {len(plan.asks)} questions, {size.lanes} deliveries "
            f"at once, cap {int(size.seconds)} s"
        ),
        "plan": plan.facts(),
        "bind": binding,
        "lunch": got,
        # The usual keys of a result (report.py's other tables skip this workload).
        "completed": got["asked"],
        "answers_per_s": got["answers_per_s"],
        "p50_ms": None if got["p50_s"] is None else round(got["p50_s"] * 1000, 1),
        "p99_ms": None if got["p99_s"] is None else round(got["p99_s"] * 1000, 1),
        "time_limit_s": size.seconds,
        "capped": capped,
        "school_profile": school_profile,
        "school": {
            name: {
                **school_counts(before_school[name], after_school[name]),
                "peak_in_flight": after_school[name]["peak_in_flight"],
            }
            for name in SCHOOL_SYSTEMS
        },
        "school_requests": sum(
            after_school[n]["requests"] - before_school[n]["requests"] for n in SCHOOL_SYSTEMS
        ),
        "wechat_api": {
            "tokens_fetched": wechat_api.get("tokens_fetched"),
            "accepted": wechat_api.get("accepted"),
            "refused": wechat_api.get("refused"),
        },
        "server": counters,
        "cache_by_kind": cache_by_kind(counters.get("jnufm_cache_lookups", {})),
        "server_log": server_log(log_path, log_start),
        "statuses": dict(sorted((system.statuses() - before_status).items())),
        "rss_mb": {str(pid): mb for pid, mb in system.rss().items()},
        "notes": notes,
    }
    o = got["outcomes"]
    log(
        f"  wechat: {got['asked']} questions in {got['seconds']} s: passive {o['passive_first']} "
        f"(+{o['passive_retry']} on a retry), customer {o['customer']}, lost {o['lost']}, "
        f"refused {o['limited']}, errors {o['error'] + o['customer_error']}; answer p50 "
        f"{got['p50_s']} s p99 {got['p99_s']} s; longest passive reply "
        f"{got['longest_passive_reply_s']} s; school requests {out['school_requests']}; "
        f"customer messages {wechat_api.get('accepted')}; tokens {wechat_api.get('tokens_fetched')}"
        + (f"  [{'; '.join(notes)}]" if notes else "")
    )
    return out


# --- the table --------------------------------------------------------------------


def _n(v: Any) -> str:
    return "-" if v is None else str(v)


def _handler_over(r: dict[str, Any], le: str) -> str:
    """Deliveries the handler timed over `le` seconds (jnufm_wechat_reply_seconds)."""
    buckets = r.get("server", {}).get("jnufm_wechat_reply_seconds_bucket")
    if not buckets:
        return "-"
    total = buckets.get("le=+Inf", 0)
    return str(total - buckets.get(f"le={le}", 0))


def table(doc: dict[str, Any]) -> str:
    """The workload's tables (empty without a wechat result)."""
    results = [r for r in doc.get("results", []) if r.get("workload") == KEY]
    if not results:
        return ""
    parts: list[str] = []
    for r in results:
        b, g, o = r["bind"], r["lunch"], r["lunch"]["outcomes"]
        api = r["wechat_api"]
        parts.append(
            "WeChat: followers at lunchtime (jnufm (c) serving the account; every question "
            "a WeChat delivery: safe mode, 5 s timeout, 3 retries):"
        )
        parts.append(
            "| followers bound | bind time | binds/s | bind p50 / p99 s | questions asked | "
            "passive, 1st delivery | passive, on a retry | customer message | lost | "
            "refused (too often) | errors | answer p50 / p95 / p99 s | longest passive reply "
            "s | deliveries without reply in 5 s | school requests | customer messages | "
            "access tokens | notes |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            f"| {b['bound']} / {b['followers']} | {b['seconds']} s | {_n(b['binds_per_s'])} | "
            f"{_n(b['p50_s'])} / {_n(b['p99_s'])} | {g['asked']} in {g['seconds']} s | "
            f"{o['passive_first']} | {o['passive_retry']} | {o['customer']} | {o['lost']} | "
            f"{o['limited']} | {o['error'] + o['customer_error']} | {_n(g['p50_s'])} / "
            f"{_n(g['p95_s'])} / {_n(g['p99_s'])} | {_n(g['longest_passive_reply_s'])} | "
            f"{g['deliveries_unanswered_within_5s']} of {g['deliveries']} | "
            f"{r['school_requests']} | {_n(api['accepted'])} | {_n(api['tokens_fetched'])} | "
            f"{'; '.join(r['notes']) or '-'} |"
        )
        rows = [
            "| questions | asked | passive 1st / retry | customer | lost | refused | errors | "
            "p50 / p95 / p99 s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for label, s in (
            ("cold (planned)", g["cold"]),
            ("warm (planned)", g["warm"]),
            *((f"`{k}`", v) for k, v in g["by_kind"].items()),
        ):
            so = s["outcomes"]
            rows.append(
                f"| {label} | {s['asked']} | {so.get('passive_first', 0)} / "
                f"{so.get('passive_retry', 0)} | {so.get('customer', 0)} | {so.get('lost', 0)} | "
                f"{so.get('limited', 0)} | {so.get('error', 0) + so.get('customer_error', 0)} | "
                f"{_n(s['p50_s'])} / {_n(s['p95_s'])} / {_n(s['p99_s'])} |"
            )
        parts.append("\n".join(rows))
        cache = r["cache_by_kind"]
        rows = [
            "| kind (server's cache) | lookups | memory hits | no fresh answer (school asked, or "
            "an older one stood in) |",
            "|---|---|---|---|",
        ]
        for kind, c in cache.items():
            rows.append(
                f"| {kind} | {c.get('lookups', 0)} | {c.get('memory_hit', 0)} | "
                f"{c.get('not_fresh', 0)} |"
            )
        parts.append("\n".join(rows))
        school = "; ".join(
            f"{name}: {s['requests']} requests, peak {s['peak_in_flight']} in flight"
            + (f", {s['logins_ok']} logins" if s.get("logins_ok") else "")
            + (f", {s['searches']} searches" if s.get("searches") is not None else "")
            for name, s in r["school"].items()
        )
        wechat_outcomes = r["server"].get("jnufm_wechat_messages", {})
        parts.append(
            f"Lunchtime at the school: {school}. The server's WeChat outcomes: "
            + (
                ", ".join(f"{k.removeprefix('outcome=')} {v}" for k, v in wechat_outcomes.items())
                or "-"
            )
            + ". Errors: "
            + (
                "; ".join(
                    f"{text.replace(chr(10), ' ')}…: {n}"
                    for text, n in r["lunch"]["errors"].items()
                )
                or "none"
            )
            + "."
        )
        sl = r.get("server_log")
        if sl:
            parts.append(
                f"Deliveries as the server timed them (access lines: first byte read to reply "
                f"written): {sl['deliveries']}, p50 {_n(sl['p50_s'])} s, p99 {_n(sl['p99_s'])} s, "
                f"max {_n(sl['max_s'])} s; {sl['over_4_5_s']} over 4.5 s, {sl['over_5_s']} over "
                f"5 s; by the handler's own clock (from its start, as its deadline): "
                f"{_handler_over(r, '5.0')} over 5 s, {_handler_over(r, '2.5')} over 2.5 s. "
                f"First deliveries without a reply within 5 s, by how the question ended: "
                f"{g.get('late_first_delivery') or 'none'}. The load generator's event loop ran "
                f"at most {_n(g.get('load_generator_loop_lag_max_s'))} s late; customer messages "
                f"matching no question: {_n(g.get('unmatched_customer_messages'))}."
            )
        p = r["plan"]
        parts.append(
            f"`wechat`: {p['followers']} followers, {p['questions']} questions in the plan "
            f"({p['cold']} cold), Zipf s = {p['zipf_s']} (seed {p['seed']}) over the followers, "
            f"at most {p['max_per_follower']} each (the top follower: "
            f"{p['top_follower_questions']}; {p['followers_asking']} followers ask, "
            f"{p['followers_asking_once']} once); kinds {p['by_kind']}."
        )
    return "\n\n".join(parts)

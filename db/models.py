"""Tables: students, their keyed credential verifiers (never a password), stored results
of every school system, registered clients, tokens (hashed), 2013 accounts and their
pictures, leases, sealed school sessions and recent logins judged per student and client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime stored as a naive one (MySQL DATETIME(6), SQLite text)."""

    impl = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Student(Base):
    """A student who has logged in through us at least once."""

    __tablename__ = "students"
    __table_args__ = (
        # Pruning students not seen for long reads only the old end (db/retention.py).
        Index("ix_students_last_login_at", "last_login_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    student_id: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Verifier(Base):
    """What proves a student's password at one school system, without being it.

    HMAC-SHA256(server secret, system + student id + password), hex; useless to
    an attacker who has the table but not the key. Replaced when the school
    accepts a new password, deleted when it refuses the one it stood for.
    """

    __tablename__ = "verifiers"
    __table_args__ = (
        UniqueConstraint("student_pk", "system"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    system: Mapped[str] = mapped_column(String(16))
    verifier: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Result(Base):
    """The latest good answer of one question to one school system.

    `subject` is the student it belongs to, or "" for an answer every student
    shares (a library search); `key` is the SHA-256 of system, subject, kind and
    parameters (db.queries.result_key), the one unique index whatever their length.
    """

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("key"),
        # Pruning: a kind's answers past their retention, and the oldest shared ones.
        Index("ix_results_kind_fetched_at", "kind", "fetched_at"),
        Index("ix_results_subject_fetched_at", "subject", "fetched_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    system: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(LongText)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Client(Base):
    """A registered client (a gateway, an app's backend, a campus NAT): known by an API key
    (only its SHA-256 is kept) and/or by addresses, with its own quotas and failure budget.

    A quota left empty (NULL) takes the default of `clients:` in config.yaml.
    """

    __tablename__ = "clients"
    __table_args__ = (
        UniqueConstraint("name"),
        UniqueConstraint("key_hash"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str | None] = mapped_column(String(64))
    # CIDR networks it speaks from, space-separated ("" = by key only).
    addresses: Mapped[str] = mapped_column(Text)
    requests_per_s: Mapped[float | None] = mapped_column(Float)
    burst: Mapped[float | None] = mapped_column(Float)
    school_requests_per_s: Mapped[float | None] = mapped_column(Float)
    school_burst: Mapped[float | None] = mapped_column(Float)
    failures_max: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Token(Base):
    """A bearer token: only its SHA-256 is kept (the token itself is shown once).

    `kind` is "session" (a student's token for one school system: the password is
    kept sealed, so queries need none), "feed" (a calendar feed URL: reads stored
    answers only) or "account" (a 2013 account's login). `verifier` is the prefix
    of the keyed verifier of the password the token was made with: a password
    change at the school ends every token made with another one. An ended token
    keeps its row (with `ended_reason`) for a while, so its holder learns why.
    """

    __tablename__ = "tokens"
    __table_args__ = (
        UniqueConstraint("token_hash"),
        Index("ix_tokens_student", "student_id", "system"),
        Index("ix_tokens_account_id", "account_id"),
        # Pruning tokens ended, unused or too old for long (db/retention.py).
        Index("ix_tokens_ended_at", "ended_at"),
        Index("ix_tokens_last_used_at", "last_used_at"),
        Index("ix_tokens_created_at", "created_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    student_id: Mapped[str | None] = mapped_column(String(32))
    system: Mapped[str | None] = mapped_column(String(16))
    verifier: Mapped[str | None] = mapped_column(String(32))
    sealed: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # A feed's content: "all" (classes and exams), "timetable" or "exams", of one term.
    feed: Mapped[str | None] = mapped_column(String(16))
    year: Mapped[int | None] = mapped_column(Integer)
    term: Mapped[int | None] = mapped_column(SmallInteger)
    # The registered client that made it ("" for none), and a label its owner chose.
    client: Mapped[str] = mapped_column(String(64), default="")
    label: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(32))


class Account(Base):
    """A 2013-style jnu.fm account: a user name, a password kept as an argon2 hash (never
    the password), a public profile and the academic office student number bound to it."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("username"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    # nickname, realname, sex, signature (JSON object of strings).
    profile: Mapped[str] = mapped_column(Text)
    student_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Upload(Base):
    """An account's picture (avatar or background), re-encoded as PNG after checking."""

    __tablename__ = "uploads"
    __table_args__ = (
        UniqueConstraint("name"),
        UniqueConstraint("account_id", "kind"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    # The random file name it is served under (/uploads/<name>.png).
    name: Mapped[str] = mapped_column(String(64))
    # The PNG in base64: aiomysql 0.3 cannot bind bytes with PyMySQL 1.2's converters.
    data: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Lease(Base):
    """A named, expiring claim shared by every process on the database.

    Used to let one process fetch what many want (coalescing) and to cap
    concurrent requests to a school system (budget slots). A holder that
    crashes loses its lease when `expires_at` passes.
    """

    __tablename__ = "leases"
    __table_args__ = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SchoolSession(Base):
    """A student's logged-in session at a school system, sealed with the server's key."""

    __tablename__ = "school_sessions"
    __table_args__ = (
        UniqueConstraint("student_pk", "system"),
        # Pruning sessions idle or too old to be used (db/retention.py).
        Index("ix_school_sessions_used_at", "used_at"),
        Index("ix_school_sessions_created_at", "created_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    system: Mapped[str] = mapped_column(String(16))
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginFailure(Base):
    """One wrong (or still undecided) password, counted against a student or a client.

    `scope` is "student" (subject "<system>:<student id>"), "ip" (an anonymous
    client's address, IPv6 by network) or "client" (a registered client's name);
    `attempt` identifies the password tried (a prefix of its keyed verifier), so
    the limits count distinct passwords. `outcome`:

    - PENDING: a student's password with no verifier to judge it, while the school
      has not said (counted for moments only; withdrawn if the school never says);
    - REFUSED: the school said the password is wrong;
    - MISMATCHED: it differs from the password the school last accepted (the stored
      verifier judged it), and the school has not said otherwise.

    A client's rows are written only once a password is judged wrong (REFUSED or
    MISMATCHED): a request refused before judging never counts against anyone.
    Rows older than the lockout window count for nothing: pruned as failures are
    added, and in the background (db/retention.py).
    """

    PENDING = 0
    REFUSED = 1
    MISMATCHED = 2

    __tablename__ = "login_failures"
    __table_args__ = (
        # Counting one subject's recent failures is an index range scan.
        Index("ix_login_failures_scope", "scope", "subject", "failed_at"),
        # Pruning expired rows reads only the expired end of this index.
        Index("ix_login_failures_failed_at", "failed_at"),
        # Withdrawing every row of a password the school accepted.
        Index("ix_login_failures_attempt", "attempt"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(8))
    # "<system>:<student number>", an IP address (or IPv6 network), or a client's name.
    subject: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempt: Mapped[str] = mapped_column(String(32), default="")
    outcome: Mapped[int] = mapped_column(SmallInteger, default=0)


class PageCapture(Base):
    """A school page a client could not read, redacted (school/capture.py), with the
    request that led to it: kept for the operator (`python server.py pages`).

    One row per system, page kind, day and redacted page: the same page seen again
    counts in `seen`. At most `captures.per_system_per_day` rows per system and day.
    """

    __tablename__ = "page_captures"
    __table_args__ = (
        UniqueConstraint("system", "kind", "day", "digest"),
        # The newest first (the dashboard, `pages list`) and pruning the oldest.
        Index("ix_page_captures_last_seen_at", "last_seen_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    # The UTC day of the first sighting, YYYY-MM-DD.
    day: Mapped[str] = mapped_column(String(10))
    # SHA-256 of the redacted page: the same page seen again is the same row.
    digest: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen: Mapped[int] = mapped_column(Integer, default=1)
    # Why the client could not read it (our own message, digits masked).
    reason: Mapped[str] = mapped_column(String(300))
    # The request that got the page: method, URL without query values, field names.
    method: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(String(500))
    form_names: Mapped[str] = mapped_column(String(500))
    # The requests of the fetch before it ("GET /path" lines).
    trail: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    # The page's size as received, in bytes, and whether the kept copy was cut.
    size: Mapped[int] = mapped_column(Integer)
    cut: Mapped[int] = mapped_column(SmallInteger, default=0)
    page: Mapped[str] = mapped_column(LongText)


class WeChatFollower(Base):
    """A WeChat follower bound to a student (channels/wechat/, POST /v1/wechat/bind).

    The follower is kept as a keyed hash of the account's app id and the openid (a
    lookup needs no original; a dump names nobody). The chat holds only the ids of the
    student tokens the binding made: one for the card center, one for the academic
    office if its password was given. One follower, one student; a student may bind
    several followers. An ended binding keeps its row a while (`ended_reason`).
    """

    __tablename__ = "wechat_followers"
    __table_args__ = (
        UniqueConstraint("account", "follower"),
        Index("ix_wechat_followers_student_id", "student_id"),
        Index("ix_wechat_followers_ended_at", "ended_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The account's name in `wechat.accounts`.
    account: Mapped[str] = mapped_column(String(32))
    # HMAC-SHA256 of (app id, openid) under the secret key, hex.
    follower: Mapped[str] = mapped_column(String(64))
    student_id: Mapped[str] = mapped_column(String(32))
    card_token_id: Mapped[int | None] = mapped_column(Integer)
    academic_token_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(32))


class WeChatTicket(Base):
    """A bind link's ticket once used: a link opens one binding only. Kept until the
    ticket would have expired anyway."""

    __tablename__ = "wechat_tickets"
    __table_args__ = (
        UniqueConstraint("ticket_id"),
        Index("ix_wechat_tickets_expires_at", "expires_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WeChatMessage(Base):
    """One follower message being answered, shared by every worker and host: WeChat
    sends the same message again (same MsgId) when no reply came within 5 s, to any
    worker; the first claims it, the others wait for its reply here.

    `message_key` is a keyed hash of (account, openid, MsgId or the event's time and
    name). `reply` is the passive reply's XML sealed with the secret key (it holds a
    student's data). `state`: working, answered (reply ready), late (the follower was
    told to wait; the answer goes by customer message), delivered. Kept for minutes.
    """

    __tablename__ = "wechat_messages"
    __table_args__ = (
        UniqueConstraint("account", "message_key"),
        Index("ix_wechat_messages_created_at", "created_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(32))
    message_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    # How many times WeChat sent it (1 + its retries seen).
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    reply: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WeChatApiToken(Base):
    """An official account's API access_token, shared by every worker and host (WeChat
    keeps one valid at a time: a worker fetching its own would end the others'), sealed
    with the secret key; and the customer messages sent on the current day, against
    the API's daily limit."""

    __tablename__ = "wechat_api_tokens"
    __table_args__ = (
        UniqueConstraint("app_id"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # UTC+8 day (YYYY-MM-DD) the count is of, and customer messages sent on it.
    day: Mapped[str] = mapped_column(String(10), default="")
    sent: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Watch(Base):
    """A student's opt-in watch (services/watches/): a kind of change at the school to be
    told of, through a channel.

    It lives with the student session token it polls with (`token_id`): when the token
    ends (revoked, expired, a password change), the watch ends. `state` is what the
    last poll saw (the baseline the next one is compared with), sealed: it holds the
    student's data. `target` is sealed too (a webhook URL, an e-mail address, a
    follower's openid). `next_poll_at` orders the scheduler's work; a poll claims a
    watch by moving it.
    """

    __tablename__ = "watches"
    __table_args__ = (
        Index("ix_watches_next_poll_at", "next_poll_at"),
        Index("ix_watches_student_id", "student_id"),
        Index("ix_watches_token_id", "token_id"),
        Index("ix_watches_ended_at", "ended_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    student_id: Mapped[str] = mapped_column(String(32))
    # The school system it asks ("card" or "academic") and the token it asks with.
    system: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[int] = mapped_column(Integer)
    # card_transaction, low_balance, grade, exam_soon, timetable_change.
    kind: Mapped[str] = mapped_column(String(24))
    # low_balance: the threshold ("20.00"); exam_soon: hours before ("24").
    param: Mapped[str] = mapped_column(String(32), default="")
    # webhook, email, wechat; the target and the webhook's signing secret, sealed.
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(Text)
    client: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(32))
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the last poll saw, sealed JSON; None until the first poll (the baseline).
    state: Mapped[str | None] = mapped_column(LongText)
    # Messages given up on (shown to the student with the watch).
    failures: Mapped[int] = mapped_column(Integer, default=0)


class OutboxMessage(Base):
    """A message to deliver, written in the same transaction as the watch state that
    revealed its event: nothing lost; `event_key` (unique, also sent to receivers as the
    idempotency key) makes the same event one message, whoever saw it.

    A worker delivers a row under a lease (`holder`, `lease_until`); a worker that died
    mid-delivery leaves a lease that expires, and another delivers it again (at least
    once: receivers tell a second delivery by its key). `payload` is sealed.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("event_key"),
        Index("ix_outbox_next_attempt_at", "next_attempt_at"),
        Index("ix_outbox_watch_id", "watch_id"),
        Index("ix_outbox_created_at", "created_at"),
        # The caps count what was delivered in the last hour (student) or minute (channel).
        Index("ix_outbox_delivered_at", "delivered_at"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    watch_id: Mapped[int] = mapped_column(Integer)
    event_key: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None once delivered or given up on.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    holder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the last attempt failed (our words and the receiver's status, no secret).
    last_error: Mapped[str] = mapped_column(String(200), default="")

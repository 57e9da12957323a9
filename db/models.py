"""Tables: students, their keyed credential verifiers (never a password), stored results
of every school system, calendar feed tokens (hashed), leases, sealed school sessions
and recent failed logins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Dialect,
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
    __table_args__ = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}

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


class CalendarToken(Base):
    """A revocable calendar feed URL of one student: only its SHA-256 is kept (the URL
    itself is shown once, at creation). It reads stored answers; it cannot log in."""

    __tablename__ = "calendar_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash"),
        Index("ix_calendar_tokens_student_id", "student_id"),
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    student_id: Mapped[str] = mapped_column(String(32))
    # What the feed holds: "all" (classes and exams), "timetable" or "exams".
    feed: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    term: Mapped[int] = mapped_column(SmallInteger)
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
        {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    system: Mapped[str] = mapped_column(String(16))
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginFailure(Base):
    """One failed (or still undecided) login, counted against a student or a client address.

    `scope` is "student" (subject "<system>:<student id>") or "ip"; `attempt`
    identifies the password tried (a prefix of its keyed verifier), so the
    limits count distinct passwords; `outcome` is PENDING while the request is
    under way, REFUSED once the school said the password is wrong, UNJUDGED when
    the request ended without a verdict. Rows older than the lockout window are
    pruned opportunistically.
    """

    PENDING = 0
    REFUSED = 1
    UNJUDGED = 2

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
    # "<system>:<student number>" or an IP address (or IPv6 network) in text.
    subject: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempt: Mapped[str] = mapped_column(String(32), default="")
    outcome: Mapped[int] = mapped_column(SmallInteger, default=0)

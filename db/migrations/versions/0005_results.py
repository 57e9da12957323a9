"""One table of stored answers for every school system: `results` replaces `card_results`.

A result is keyed by its system, its subject (a student number, or "" for an
answer every student shares, like a library search), its kind and its
parameters; `key` is the SHA-256 of those four, so one unique index serves any
length of parameters on MySQL and SQLite alike. The card center's stored
answers are carried over.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from db.models import LongText, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def result_key(system: str, subject: str, kind: str, params: str) -> str:
    return hashlib.sha256(f"{system}\0{subject}\0{kind}\0{params}".encode()).hexdigest()


def _utc(value: datetime | str) -> datetime:
    """A stored naive UTC time (text on SQLite) as an aware one."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


def upgrade() -> None:
    results = op.create_table(
        "results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", sa.String(255), nullable=False),
        sa.Column("payload", LongText, nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_results"),
        sa.UniqueConstraint("key", name="uq_results_key"),
        **MYSQL,
    )
    rows = op.get_bind().execute(
        sa.text(
            "SELECT s.student_id, r.kind, r.params, r.payload, r.fetched_at "
            "FROM card_results r JOIN students s ON s.id = r.student_pk"
        )
    )
    op.bulk_insert(
        results,
        [
            {
                "key": result_key("card", student, kind, params),
                "system": "card",
                "subject": student,
                "kind": kind,
                "params": params,
                "payload": payload,
                "fetched_at": _utc(fetched_at),
            }
            for student, kind, params, payload, fetched_at in rows
        ],
    )
    op.drop_table("card_results")


def downgrade() -> None:
    op.create_table(
        "card_results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("student_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", sa.String(32), nullable=False),
        sa.Column("payload", LongText, nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_card_results"),
        **MYSQL,
    )
    op.drop_table("results")

"""Registered clients, one table of bearer tokens (student sessions, calendar feeds, 2013
accounts), 2013 accounts and their pictures.

The calendar feed tokens of `calendar_tokens` move into `tokens` (kind "feed",
system "academic"), keeping their hashes: feed URLs already handed out keep
working. They were made before tokens remembered the password they were made
with (`verifier` NULL), so the next password change at the school ends them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from db.models import LongText, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def _utc(value: datetime | str) -> datetime:
    """A stored naive UTC time (text on SQLite) as an aware one."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=True),
        sa.Column("addresses", sa.Text(), nullable=False),
        sa.Column("requests_per_s", sa.Float(), nullable=True),
        sa.Column("burst", sa.Float(), nullable=True),
        sa.Column("school_requests_per_s", sa.Float(), nullable=True),
        sa.Column("school_burst", sa.Float(), nullable=True),
        sa.Column("failures_max", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_clients"),
        sa.UniqueConstraint("name", name="uq_clients_name"),
        sa.UniqueConstraint("key_hash", name="uq_clients_key_hash"),
        **MYSQL,
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("student_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("username", name="uq_accounts_username"),
        **MYSQL,
    )
    tokens = op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("student_id", sa.String(32), nullable=True),
        sa.Column("system", sa.String(16), nullable=True),
        sa.Column("verifier", sa.String(32), nullable=True),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("feed", sa.String(16), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("term", sa.SmallInteger(), nullable=True),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_reason", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_tokens_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
        **MYSQL,
    )
    op.create_index("ix_tokens_student", "tokens", ["student_id", "system"])
    op.create_index("ix_tokens_account_id", "tokens", ["account_id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("data", LongText, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_uploads_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
        sa.UniqueConstraint("name", name="uq_uploads_name"),
        sa.UniqueConstraint("account_id", "kind", name="uq_uploads_account_id"),
        **MYSQL,
    )
    rows = op.get_bind().execute(
        sa.text(
            "SELECT token_hash, student_id, feed, year, term, created_at FROM calendar_tokens"
        )
    )
    op.bulk_insert(
        tokens,
        [
            {
                "token_hash": token_hash,
                "kind": "feed",
                "student_id": student_id,
                "system": "academic",
                "verifier": None,
                "sealed": None,
                "account_id": None,
                "feed": feed,
                "year": year,
                "term": term,
                "client": "",
                "label": "",
                "created_at": _utc(created_at),
                "last_used_at": _utc(created_at),
                "ended_at": None,
                "ended_reason": None,
            }
            for token_hash, student_id, feed, year, term, created_at in rows
        ],
    )
    op.drop_table("calendar_tokens")


def downgrade() -> None:
    op.create_table(
        "calendar_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("student_id", sa.String(32), nullable=False),
        sa.Column("feed", sa.String(16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("term", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calendar_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_calendar_tokens_token_hash"),
        **MYSQL,
    )
    op.create_index("ix_calendar_tokens_student_id", "calendar_tokens", ["student_id"])
    op.execute(
        "INSERT INTO calendar_tokens (token_hash, student_id, feed, year, term, created_at) "
        "SELECT token_hash, student_id, feed, year, term, created_at FROM tokens "
        "WHERE kind = 'feed' AND ended_at IS NULL"
    )
    op.drop_table("uploads")
    op.drop_index("ix_tokens_account_id", table_name="tokens")
    op.drop_index("ix_tokens_student", table_name="tokens")
    op.drop_table("tokens")
    op.drop_table("accounts")
    op.drop_table("clients")

"""Pages the school clients could not read, redacted, for the operator.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from db.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "page_captures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("form_names", sa.String(500), nullable=False),
        sa.Column("trail", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("cut", sa.SmallInteger(), nullable=False),
        sa.Column("page", LongText, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_page_captures"),
        sa.UniqueConstraint("system", "kind", "day", "digest", name="uq_page_captures_system"),
        **MYSQL,
    )
    op.create_index("ix_page_captures_last_seen_at", "page_captures", ["last_seen_at"])


def downgrade() -> None:
    op.drop_table("page_captures")

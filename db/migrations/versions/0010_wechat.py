"""The WeChat official account: bound followers, used bind tickets, messages being
answered (shared by the workers) and the API's access token.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    op.create_table(
        "wechat_followers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("follower", sa.String(64), nullable=False),
        sa.Column("student_id", sa.String(32), nullable=False),
        sa.Column("card_token_id", sa.Integer(), nullable=True),
        sa.Column("academic_token_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_wechat_followers"),
        sa.UniqueConstraint("account", "follower", name="uq_wechat_followers_account"),
        **MYSQL,
    )
    op.create_index("ix_wechat_followers_student_id", "wechat_followers", ["student_id"])
    op.create_index("ix_wechat_followers_ended_at", "wechat_followers", ["ended_at"])
    op.create_table(
        "wechat_tickets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(32), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wechat_tickets"),
        sa.UniqueConstraint("ticket_id", name="uq_wechat_tickets_ticket_id"),
        **MYSQL,
    )
    op.create_index("ix_wechat_tickets_expires_at", "wechat_tickets", ["expires_at"])
    op.create_table(
        "wechat_messages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("message_key", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wechat_messages"),
        sa.UniqueConstraint("account", "message_key", name="uq_wechat_messages_account"),
        **MYSQL,
    )
    op.create_index("ix_wechat_messages_created_at", "wechat_messages", ["created_at"])
    op.create_table(
        "wechat_api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wechat_api_tokens"),
        sa.UniqueConstraint("app_id", name="uq_wechat_api_tokens_app_id"),
        **MYSQL,
    )


def downgrade() -> None:
    for table in ("wechat_api_tokens", "wechat_messages", "wechat_tickets", "wechat_followers"):
        op.drop_table(table)

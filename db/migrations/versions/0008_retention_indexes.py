"""Indexes on the time columns that retention prunes by (db/retention.py): each round
reads only the expired end of an index, never a whole table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_students_last_login_at", "students", ["last_login_at"]),
    ("ix_results_kind_fetched_at", "results", ["kind", "fetched_at"]),
    ("ix_results_subject_fetched_at", "results", ["subject", "fetched_at"]),
    ("ix_tokens_ended_at", "tokens", ["ended_at"]),
    ("ix_tokens_last_used_at", "tokens", ["last_used_at"]),
    ("ix_tokens_created_at", "tokens", ["created_at"]),
    ("ix_school_sessions_used_at", "school_sessions", ["used_at"]),
    ("ix_school_sessions_created_at", "school_sessions", ["created_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)

"""Leases (cross-process coalescing and the school budget) and encrypted school sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
        **MYSQL,
    )
    op.create_table(
        "school_sessions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("student_pk", sa.Integer(), nullable=False),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_school_sessions"),
        sa.ForeignKeyConstraint(
            ["student_pk"],
            ["students.id"],
            name="fk_school_sessions_student_pk_students",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("student_pk", "system", name="uq_school_sessions_student_pk"),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("school_sessions")
    op.drop_table("leases")

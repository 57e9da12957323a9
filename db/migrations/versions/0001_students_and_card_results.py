"""Students with a credential verifier, and the latest card result per query.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from db.models import LongText, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    op.create_table(
        "students",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("student_id", sa.String(20), nullable=False),
        sa.Column("verifier", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_login_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_students"),
        sa.UniqueConstraint("student_id", name="uq_students_student_id"),
        **MYSQL,
    )
    op.create_table(
        "card_results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("student_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", sa.String(32), nullable=False),
        sa.Column("payload", LongText, nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_card_results"),
        sa.ForeignKeyConstraint(
            ["student_pk"],
            ["students.id"],
            name="fk_card_results_student_pk_students",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("student_pk", "kind", "params", name="uq_card_results_student_pk"),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("card_results")
    op.drop_table("students")

"""The credential gate: one verifier per student and school system, and failed logins
keyed by the password tried (so a repeated guess counts once) with their outcome.

Verifiers move from `students.verifier` to `verifiers` (student, system); they
now bind the system too, so the old ones cannot be carried over: each student's
next request is judged by the school once. Recent failed logins are dropped
(they only live for the lockout window).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    op.create_table(
        "verifiers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("student_pk", sa.Integer(), nullable=False),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("verifier", sa.String(64), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verifiers"),
        sa.ForeignKeyConstraint(
            ["student_pk"],
            ["students.id"],
            name="fk_verifiers_student_pk_students",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("student_pk", "system", name="uq_verifiers_student_pk"),
        **MYSQL,
    )
    with op.batch_alter_table("students") as batch:
        batch.drop_column("verifier")
    op.execute(sa.text("DELETE FROM login_failures"))
    with op.batch_alter_table("login_failures") as batch:
        batch.add_column(sa.Column("attempt", sa.String(32), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("outcome", sa.SmallInteger(), nullable=False, server_default="0")
        )
    op.create_index("ix_login_failures_attempt", "login_failures", ["attempt"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_attempt", table_name="login_failures")
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_column("outcome")
        batch.drop_column("attempt")
    with op.batch_alter_table("students") as batch:
        batch.add_column(sa.Column("verifier", sa.String(64), nullable=False, server_default=""))
    op.drop_table("verifiers")

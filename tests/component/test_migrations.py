"""The migrations build exactly the tables db/models.py describes, on SQLite and MySQL,
and carry stored data over when they reshape a table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, select, text

from db.engine import make_engine
from db.migrate import alembic_config, migrate
from db.models import Base, Result
from db.queries import result_key
from settings import DatabaseSettings


def differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    engine = make_engine(DatabaseSettings(url=db_url))
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_stored_card_answers_survive_the_move_to_one_results_table(db_url: str) -> None:
    engine = make_engine(DatabaseSettings(url=db_url))
    fetched = datetime(2026, 11, 27, 8, 30, 15, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0004"))
            await conn.execute(
                text(
                    "INSERT INTO students (student_id, name, created_at, last_login_at) "
                    "VALUES (:s, '', :t, :t)"
                ),
                {"s": "2012052690", "t": fetched.replace(tzinfo=None)},
            )
            await conn.execute(
                text(
                    "INSERT INTO card_results (student_pk, kind, params, payload, fetched_at) "
                    "SELECT id, 'history', '20261101-20261126', '[]', :t FROM students"
                ),
                {"t": fetched.replace(tzinfo=None)},
            )
        await migrate(engine)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        Result.key,
                        Result.system,
                        Result.subject,
                        Result.kind,
                        Result.params,
                        Result.payload,
                    )
                )
            ).all()
            tables = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
    finally:
        await engine.dispose()
    key = result_key("card", "2012052690", "history", "20261101-20261126")
    assert [tuple(r) for r in rows] == [
        (key, "card", "2012052690", "history", "20261101-20261126", "[]")
    ]
    assert "card_results" not in tables


def test_the_head_read_without_alembic_is_alembics(tmp_path: Path) -> None:
    from db.migrate import alembic_head
    from db.revision import MIGRATIONS_DIR, head_revision

    assert head_revision() == alembic_head() is not None
    # A branching history is refused, not resolved by guessing.
    versions = tmp_path / "versions"
    versions.mkdir()
    for name in ("0001", "0002", "0003"):
        down = "None" if name == "0001" else '"0001"'
        (versions / f"{name}.py").write_text(f'revision = "{name}"\ndown_revision = {down}\n')
    with pytest.raises(ValueError, match="several heads"):
        head_revision(versions)
    assert head_revision(MIGRATIONS_DIR / "versions") == alembic_head()

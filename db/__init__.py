"""Storage: SQLAlchemy 2 asyncio models, engine factory, queries and Alembic migrations.

The same code runs on MySQL (aiomysql) and on an embedded SQLite file (aiosqlite,
WAL mode). Query functions never commit: the caller owns the transaction.
"""

"""Tests with one real dependency in process: SQLite/MySQL, the simulated school
process, or the app served over real HTTP."""

"""Fixtures for the event store tests, and the one PostgreSQL rule.

PostgreSQL tests use the real server (``XUNCHA_PG_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). When it cannot be
reached they are skipped — unless ``XUNCHA_REQUIRE_PG`` is set (CI sets it), in
which case they fail. Every PostgreSQL test works in a schema of its own and
drops it afterwards.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator

import pytest

PG_URL = os.environ.get("XUNCHA_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@functools.cache
def _pg_problem() -> str | None:
    """Why PostgreSQL cannot be used (None when it can). Checked once per session."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # any failure to connect means "unreachable" here
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def require_pg() -> None:
    """Skip or fail the calling test when PostgreSQL is unreachable (see module doc)."""
    problem = _pg_problem()
    if problem is None:
        return
    if os.environ.get("XUNCHA_REQUIRE_PG"):
        pytest.fail(f"PostgreSQL is required (XUNCHA_REQUIRE_PG is set) but {PG_URL}: {problem}")
    pytest.skip(f"PostgreSQL unreachable at {PG_URL} ({problem}); set XUNCHA_REQUIRE_PG to fail")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name for one test; dropped afterwards."""
    require_pg()
    import sqlalchemy as sa

    name = f"xuncha_test_{uuid.uuid4().hex[:12]}"
    yield name
    engine = sa.create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()

"""The PostgreSQL event store passes the store contract, against the real server.

Each test works in its own schema (the ``pg_schema`` fixture), which is dropped
afterwards; see ``conftest.py`` for when these tests skip or fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from xuncha_flow.stores import SCHEMA_VERSION, postgres_log

from .conftest import PG_URL, require_pg
from .contract import SqlContract, make_events


class TestPostgresEventLog(SqlContract):
    @pytest.fixture
    def db(self, pg_schema: str) -> Iterator[sa.Engine]:
        engine = sa.create_engine(PG_URL)
        yield engine
        engine.dispose()

    @pytest.fixture
    def options(self, pg_schema: str) -> dict[str, Any]:
        return {"schema": pg_schema}


def test_postgres_log_opens_a_url_and_a_prefix(pg_schema: str) -> None:
    url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with postgres_log(url, schema=pg_schema, prefix="wf_") as store:
        assert store.dialect == "postgresql"
        store.append("R-1", 0, make_events("R-1", 2))
        assert store.version("R-1") == 2
    engine = sa.create_engine(PG_URL)
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("wf_events", schema=pg_schema)
    engine.dispose()


def test_several_stores_create_one_schema_at_once(pg_schema: str) -> None:
    """Workers starting together: the advisory lock lets one create the tables."""
    import threading

    require_pg()
    errors: list[BaseException] = []

    def start() -> None:
        try:
            postgres_log(PG_URL, schema=pg_schema).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with postgres_log(PG_URL, schema=pg_schema, create=False) as store:
        assert store.schema_version() == SCHEMA_VERSION

"""Database drivers are extras: the core never imports them."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(out.stdout.split())


def test_importing_xuncha_flow_imports_no_database_driver() -> None:
    loaded = _modules_after("import xuncha_flow, xuncha_flow.testing")
    assert "xuncha_flow" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("sqlalchemy", "psycopg", "sqlite3")}
    assert "xuncha_flow.stores" not in loaded


def test_the_stores_import_sqlalchemy_but_not_psycopg_until_used() -> None:
    loaded = _modules_after("import xuncha_flow.stores")
    assert "sqlalchemy" in loaded
    assert "psycopg" not in loaded

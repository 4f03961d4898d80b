"""The PostgreSQL rule of ``conftest.py``: unreachable means skipped, unless
``XUNCHA_REQUIRE_PG`` is set, which makes it a failure (an error in the fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "postgresql+psycopg://postgres@127.0.0.1:9/test"  # the discard port: refused


def _run(require: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "XUNCHA_REQUIRE_PG"}
    env["XUNCHA_PG_URL"] = NOWHERE
    if require:
        env["XUNCHA_REQUIRE_PG"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/stores/test_postgres.py::test_postgres_log_opens_a_url_and_a_prefix",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("require", "outcome"), [(False, "1 skipped"), (True, "1 error")])
def test_unreachable_postgres_skips_unless_required(require: bool, outcome: str) -> None:
    result = _run(require)
    assert outcome in result.stdout, result.stdout + result.stderr
    assert (result.returncode == 0) is (not require)

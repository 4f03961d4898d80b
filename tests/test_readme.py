"""The README opens with the two commands, and CI runs the test one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```sh\n(.*?)\n```", re.DOTALL | re.MULTILINE)


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = text.split("\n---\n", 1)[0]
    return BLOCK.findall(head)


def test_the_readme_opens_with_the_main_job_and_the_test_command() -> None:
    main, test = _commands()
    assert "examples/simulate_round.py" in main
    assert "'.[sqlite]'" in main  # the embedded store's extra
    assert "python -m venv" in main or "python3 -m venv" in main
    assert "pytest" in test
    assert "'.[dev]'" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test = _commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in ci.splitlines() if not line.lstrip().startswith("#")]
    assert test.strip() in lines
    assert "ruff check" in ci
    assert "mypy --strict src" in ci
    assert "pg_ctlcluster" in ci
    assert "XUNCHA_REQUIRE_PG=1" in ci

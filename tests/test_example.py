"""The simulated round of ``examples/simulate_round.py`` (issue 2 item 11)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from xuncha_flow import Engine, OutcomeFigures, outcome_figures

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "simulate_round.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("simulate_round", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return _load()


@pytest.fixture(scope="module")
def simulated(example: ModuleType) -> tuple[Engine, OutcomeFigures, str]:
    engine, figures = example.simulate()
    return engine, figures, example.ROUND


def test_the_example_runs_and_prints_the_report(tmp_path: Path) -> None:
    db = tmp_path / "round.sqlite3"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in (
        "problems found",
        "problems fed back",
        "immediate fixes",
        "leads transferred",
        "leads reconciled",
        "closed",
        "long-term",
        "withdrawn",
        "completion rate",
        "losses recovered",
        "rules established",
        "people held accountable",
        "hash chain verified",
        "replay matches",
    ):
        assert label in out, label
    assert "round state: closed" in out
    assert re.search(r"problems found \(发现问题\)\s+\d+", out)
    assert re.search(r"completion rate \(整改完成率\)\s+\d+\.\d\d%", out)
    assert "BROKEN" not in out
    assert "DIFFERS" not in out
    # the SQLite file was written, reopened, verified and found equal to the live round
    assert f"database {db}: reopened, " in out
    assert "(ok), state equals the live round" in out
    inspected = subprocess.run(
        [sys.executable, str(EXAMPLE.parent / "inspect_store.py"), str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert inspected.returncode == 0, inspected.stderr + inspected.stdout
    assert "hash chain verified" in inspected.stdout
    assert "(closed): 152 problems" in inspected.stdout


def test_a_tampered_database_fails_inspection(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "round.sqlite3"
    subprocess.run(
        [sys.executable, str(EXAMPLE), "--db", str(db)],
        capture_output=True,
        timeout=120,
        check=True,
    )
    with sqlite3.connect(db) as conn:  # rewrite history: an item's description
        conn.execute(
            'UPDATE xuncha_events SET body = replace(body, \'"description":"\', '
            '\'"description":"篡改\') '
            "WHERE version = (SELECT min(version) FROM xuncha_events WHERE type = 'item.record')"
        )
    inspected = subprocess.run(
        [sys.executable, str(EXAMPLE.parent / "inspect_store.py"), str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert inspected.returncode == 1
    assert "BROKEN at version" in inspected.stdout


def test_the_example_prints_json_figures() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--json", "--seed", "7", "--memory"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = OutcomeFigures.model_validate_json(done.stdout)
    assert figures.problems_found > 0
    assert figures.completion_rate is not None
    assert 0 < figures.completion_rate <= 1


def test_the_simulated_round_is_closed_verified_and_replayable(
    simulated: tuple[Engine, OutcomeFigures, str],
) -> None:
    engine, figures, round_id = simulated
    state = engine.state(round_id)
    assert state.round is not None
    assert state.round.state == "closed"
    assert {u.state for u in state.units.values()} == {"evaluated"}
    assert engine.log.verify().ok
    assert engine.replay(round_id) == state
    assert outcome_figures(state) == figures


def test_the_simulated_round_has_every_variant(
    simulated: tuple[Engine, OutcomeFigures, str],
) -> None:
    engine, figures, round_id = simulated
    state = engine.state(round_id)
    types = {e.type for e in engine.log.read(round_id)}
    assert len(state.units) >= 3
    assert all(len(list(state.unit_items(u))) >= 10 for u in state.units)  # tens per unit

    immediate = [i for i in state.items.values() if i.immediate and i.state == "closed"]
    assert immediate
    assert figures.immediate_fixes == len(immediate)
    assert "item.order_immediate_fix" in types

    refined = [i for i in state.items.values() if i.children]
    assert refined
    assert "item.refine" in types

    reconciled = [le for le in state.leads.values() if le.state == "reconciled"]
    assert reconciled
    assert figures.leads_reconciled == len(reconciled)

    assert "item.reject" in types
    assert any(i.rejections for i in state.items.values())

    long_term = [i for i in state.items.values() if i.state == "long_term"]
    assert long_term
    assert all(i.milestones for i in long_term)
    assert figures.long_term == len(long_term)

    assert figures.withdrawn >= 1
    assert figures.closed + figures.long_term + figures.withdrawn + figures.open == figures.items
    assert figures.completion_rate == figures.closed / (figures.items - figures.withdrawn)


def test_the_simulation_is_deterministic(example: ModuleType) -> None:
    first_engine, first = example.simulate(seed=11)
    second_engine, second = example.simulate(seed=11)
    assert first == second
    assert [e.hash for e in first_engine.log.read(example.ROUND)] == [
        e.hash for e in second_engine.log.read(example.ROUND)
    ]

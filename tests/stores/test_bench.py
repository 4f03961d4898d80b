"""The store benchmark runs and reports its ratios (tiny sizes; no timings asserted)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from .conftest import _pg_problem

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_store_benchmark_reports_its_ratios(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # its PostgreSQL writers are spawned processes
    bench = importlib.import_module("bench_store")
    ratios = bench.main(["--events", "40", "--batch", "10", "--repeat", "1"])
    out = capsys.readouterr().out
    expected = {
        f"sqlite {sync:<6} {label}"
        for sync in ("FULL", "NORMAL")
        for label in ("batched (10 events/tx)", "one command per transaction")
    } | {"sqlite replay: read events", "sqlite replay: to round state"}
    if _pg_problem() is None:
        expected |= {
            "postgres 1 writer, 1 command/tx",
            "postgres 2 writers, 1 command/tx",
            "postgres store: 2 writers / 1 writer throughput",
            "postgres raw: 2 writers / 1 writer throughput",
        }
    assert expected <= set(ratios)
    assert all(r > 0 for r in ratios.values())
    assert "ratio" in out
    assert "40 events" in out

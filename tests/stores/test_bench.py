"""The store benchmark runs and reports its ratios (tiny sizes; no timings asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_store.py"


def test_the_store_benchmark_reports_its_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_store", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ratios = bench.main(["--events", "40", "--batch", "10", "--repeat", "1"])
    out = capsys.readouterr().out
    expected = {
        f"sqlite {sync:<6} {label}"
        for sync in ("FULL", "NORMAL")
        for label in ("batched (10 events/tx)", "one command per transaction")
    } | {"sqlite replay: read events", "sqlite replay: to round state"}
    assert expected <= set(ratios)
    assert all(r > 0 for r in ratios.values())
    assert "ratio" in out
    assert "40 events" in out

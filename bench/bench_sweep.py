"""Sweep cost grows with what is due, not with what is open.

Two measurements, each a ratio against a baseline run in the same process (the
machines are shared and noisy, so absolute times mean little):

1. **Agenda** — ``open`` deadlines (1,000,000 by default) spread over a year, of
   which ``due`` are due at the sweep time. Taking the due entries from the
   :class:`~xuncha_flow._agenda.Agenda` is compared with a plain scan that checks
   every open deadline. The scan's cost grows with ``open``, the agenda's with
   ``due``: the ratio grows with ``open / due``.
2. **Engine** — rounds with ``engine_open / 10`` and with ``engine_open`` running
   measure deadlines, ``due`` of them due: how much the sweep's time grows from the
   small to the large round, against how much a scan of every open deadline (what
   :meth:`~xuncha_flow.Engine.overdue` does) grows. The sweep stays flat (it records
   the same events in both), the scan grows tenfold.

    python bench/bench_sweep.py [--open 1000000] [--due 1000] [--engine-open 5000]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from xuncha_flow import DEFAULT_TIMEZONE, DeadlinePolicy, Engine, Process
from xuncha_flow._agenda import Agenda
from xuncha_flow.testing import ManualClock, RoundDriver

START = datetime(2026, 1, 1, tzinfo=DEFAULT_TIMEZONE)


def _best(fn: Callable[[], Any], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_agenda(open_: int, due: int, seed: int = 7) -> dict[str, float]:
    """Agenda take vs plain scan over ``open_`` deadlines with ``due`` due."""
    rng = random.Random(seed)
    at = START + timedelta(days=1)
    # ``due`` deadlines fall before ``at``; the rest over the following year
    times = [START + timedelta(seconds=rng.randrange(0, 86_400)) for _ in range(due)]
    times += [at + timedelta(seconds=rng.randrange(1, 365 * 86_400)) for _ in range(open_ - due)]
    keys = [("deadline", f"measure_due:M-{i}") for i in range(open_)]
    plain = list(zip(times, keys, strict=True))

    def scan() -> list[Any]:
        return [key for when, key in plain if when <= at]

    def take() -> list[Any]:
        agenda = agendas.pop()
        return agenda.take_due(at)

    # one agenda per repetition, built outside the timed part
    repeat = 5
    agendas: list[Agenda] = []
    for _ in range(repeat):
        agenda = Agenda()
        for when, key in plain:
            agenda.push(when, "R-1", key)
        agendas.append(agenda)
    assert len(scan()) == due
    scan_s = _best(scan, repeat)
    take_s = _best(take, repeat)
    return {
        "open": open_,
        "due": due,
        "scan_s": scan_s,
        "agenda_s": take_s,
        "ratio": scan_s / take_s,
    }


def bench_engine(open_: int, due: int) -> dict[str, float]:
    """A sweep with ``due`` due deadlines against a scan of ``open_`` open ones."""
    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=DEFAULT_TIMEZONE))
    counter = iter(range(10**9))
    engine = Engine(
        clock=clock,
        process=Process.standard(deadlines=DeadlinePolicy.standard("seed_ladder")),
        ids=lambda: f"e{next(counter)}",
    )
    drv = RoundDriver(engine, "R-1")
    drv.round("open", {"name": "bench", "level": "county"})
    drv.do("unit", "U", "add", {"name": "U", "organization_id": "org", "team_id": "t"})
    drv.round("approve")
    drv.round("launch")
    drv.do("item", "P", "record", {"unit_id": "U", "description": "d"})
    drv.do("item", "P", "confirm")
    drv.do("unit", "U", "leave_site")
    drv.do("unit", "U", "decide_report")
    drv.do("unit", "U", "deliver_feedback", {"delivered_on": "2026-03-02"})
    drv.do("item", "P", "claim")
    feedback = date(2026, 3, 2)
    repeat = 5
    for i in range(open_):
        # ``repeat`` groups of ``due`` measures fall due on successive days (one group
        # per timed sweep), the others months later
        days = 10 + i // due if i < due * repeat else 200 + i % 100
        drv.do(
            "measure",
            f"M-{i}",
            "add",
            {
                "item_id": "P",
                "text": "措施",
                "responsible_leader": "l",
                "responsible_person": "p",
                "due_date": (feedback + timedelta(days=days)).isoformat(),
            },
        )
    drv.do("unit", "U", "submit_plan")
    drv.do("unit", "U", "approve_plan")
    # each sweep, a day apart, fires the rungs of one group: the best of ``repeat``
    engine.sweep()  # nothing is due yet
    gc.collect()
    gc.freeze()  # the loaded round is long-lived: keep it out of later collections
    sweep_s = float("inf")
    fired = 0
    first = datetime(2026, 3, 13, 9, tzinfo=DEFAULT_TIMEZONE)
    for g in range(repeat):
        clock.set(first + timedelta(days=g))
        t0 = time.perf_counter()
        report = engine.sweep()
        sweep_s = min(sweep_s, time.perf_counter() - t0)
        fired = len(report.events)
        assert fired >= due, (fired, due)
    gc.unfreeze()
    scan_s = _best(lambda: engine.overdue(), 3)
    return {
        "open": open_,
        "due": due,
        "sweep_s": sweep_s,
        "scan_s": scan_s,
        "fired": fired,
        "ratio": scan_s / sweep_s,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--engine-open", type=int, default=5_000)
    parser.add_argument("--engine-due", type=int, default=10)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"agenda": [], "engine": None}
    print("agenda: take the due entries vs scan every open deadline")
    print(f"  {'open':>10} {'due':>6} {'scan ms':>10} {'agenda ms':>10} {'scan/agenda':>12}")
    sizes = sorted({max(args.open // 100, args.due), max(args.open // 10, args.due), args.open})
    for open_ in sizes:
        r = bench_agenda(open_, args.due)
        results["agenda"].append(r)
        print(
            f"  {open_:>10,} {args.due:>6} {r['scan_s'] * 1e3:>10.2f} "
            f"{r['agenda_s'] * 1e3:>10.3f} {r['ratio']:>12.1f}"
        )
    small = bench_engine(max(args.engine_open // 10, args.engine_due), args.engine_due)
    large = bench_engine(args.engine_open, args.engine_due)
    sweep_growth = large["sweep_s"] / small["sweep_s"]
    scan_growth = large["scan_s"] / small["scan_s"]
    results["engine"] = {
        "small": small,
        "large": large,
        "sweep_growth": sweep_growth,
        "scan_growth": scan_growth,
        "ratio": scan_growth / sweep_growth,
    }
    print(
        f"engine: {args.engine_due} due deadlines among {small['open']:,} and among "
        f"{large['open']:,} open ones ({large['fired']} events recorded by each sweep)"
    )
    print(
        f"  sweep  {small['sweep_s'] * 1e3:8.2f} ms -> {large['sweep_s'] * 1e3:8.2f} ms "
        f"(x{sweep_growth:.2f})"
    )
    print(
        f"  scan   {small['scan_s'] * 1e3:8.2f} ms -> {large['scan_s'] * 1e3:8.2f} ms "
        f"(x{scan_growth:.2f})"
    )
    print(f"  scan growth / sweep growth: {scan_growth / sweep_growth:.1f}")
    return results


if __name__ == "__main__":
    main()

"""Reopen a xuncha_flow database, verify its hash chains and replay every round.

    python examples/inspect_store.py xuncha_round.sqlite3
    python examples/inspect_store.py postgresql://postgres@127.0.0.1:5432/test

For each round: its events, whether the chain verifies, and its outcome figures
computed from the replayed state. Exits with status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import sys

from xuncha_flow import (
    DeadlinePolicy,
    Engine,
    Process,
    RolePolicy,
    SystemClock,
    outcome_figures,
    replay,
)
from xuncha_flow.stores import SqlEventLog, postgres_log, sqlite_log


def builtin_processes() -> list[Process]:
    """Every built-in combination of role policy and deadline preset: a round can be
    read back only with the process it was opened with (its versions are pinned)."""
    deadlines = [DeadlinePolicy.none()] + [
        preset(ladder)
        for preset in (DeadlinePolicy.standard, DeadlinePolicy.county, DeadlinePolicy.supervision)
        for ladder in ("three_colour", "five_letters", "seed_ladder")
    ]
    roles = [
        RolePolicy.supervision_office(),
        RolePolicy.joint_supervision(),
        RolePolicy.three_party(),
    ]
    return [Process.standard(r, deadlines=d) for r in roles for d in deadlines]


def open_log(target: str) -> SqlEventLog:
    if target.startswith(("postgresql:", "postgresql+psycopg:")):
        return postgres_log(target, create=False)
    return sqlite_log(target, create=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a SQLite file or a PostgreSQL URL")
    args = parser.parse_args(argv)
    failed = False
    processes = builtin_processes()
    with open_log(args.target) as log:
        report = log.verify()
        print(
            f"{args.target}: schema version {log.schema_version()}, "
            f"{len(report.streams)} rounds, {report.events} events"
        )
        for chain in report.streams:
            status = (
                "verified"
                if chain.ok
                else f"BROKEN at version {chain.bad_version}: {chain.problem}"
            )
            print(f"  {chain.stream}: {chain.checked} events, hash chain {status}")
            failed |= not chain.ok
            if not chain.ok:
                continue
            state = replay(chain.stream, log.read(chain.stream), processes)
            engine = Engine(clock=SystemClock(), log=log, processes=processes)
            if engine.state(chain.stream) != state:
                print("    replay DIFFERS from a fresh engine's state")
                failed = True
            f = outcome_figures(state)
            rate = "—" if f.completion_rate is None else f"{f.completion_rate:.2%}"
            print(
                f"    {state.round.name if state.round else '?'} "
                f"({state.round.state if state.round else '?'}): {f.problems_found} problems, "
                f"{f.closed}/{f.items - f.withdrawn} items closed ({rate}), "
                f"{f.leads_reconciled}/{f.leads_transferred} leads reconciled"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

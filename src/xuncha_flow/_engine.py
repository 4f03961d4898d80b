"""The engine: atomic commands over rounds, each an event stream.

:meth:`Engine.execute` takes a :class:`~xuncha_flow.Command`, decides on the
round's current state whether and how it may happen, and either returns the events
it produced — already applied to the state and appended to the log — or raises and
changes nothing. The hook order is documented in ``_hooks.py`` and ``docs/hooks.md``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import attrs
from pydantic import BaseModel, ValidationError

from ._agenda import Agenda, AgendaKey
from ._checkpoints import Checkpoints, HmacKey
from ._clock import Clock, require_aware
from ._commands import Command, SubjectKind, parse_command
from ._definition import Definition
from ._effects import apply_event, current, follow_ups
from ._errors import (
    AlreadyExists,
    ClockBehind,
    ConcurrencyConflict,
    DuplicateKey,
    GuardRejected,
    InvalidArgument,
    InvalidCommand,
    LogCorrupted,
    NotFound,
    PermissionDenied,
    TransitionNotAllowed,
    UnknownProcess,
)
from ._events import DEFAULT_HASH, Event, genesis_hash, seal
from ._hooks import AfterContext, BeforeContext, Hooks
from ._log import EventLog, InMemoryEventLog, LogReport
from ._model import Deadline, RoundState
from ._outbox import DeliveryReport, Message, builtin_messages, deliver
from ._payloads import Empty
from ._process import Process
from ._roles import SWEEPER, Actor
from ._rules import GuardContext, admit, authorize
from ._snapshots import Snapshot, SnapshotStore, state_from_json
from ._timekeeping import (
    DueIndex,
    FollowUp,
    daily_checks,
    deadline_follow_ups,
    due_rungs,
    next_check,
    next_time,
    round_next_due,
    weekly_checks,
    window_violations,
)
from ._verify import verify_rounds

__all__ = ["SWEEPER", "Engine", "Plan", "SweepReport", "replay"]

_LOG = logging.getLogger("xuncha_flow")
SWEEP_RETRIES = 3
"""How often a sweep reloads and re-sweeps a round another writer appended to."""


@attrs.frozen
class SweepReport:
    """What a sweep recorded, in log order."""

    at: datetime
    events: tuple[Event, ...]
    failed: tuple[tuple[str, str], ...] = ()
    """(round id, error) of rounds that could not be loaded and were skipped."""

    def _rungs(self, kind: str) -> tuple[Event, ...]:
        return tuple(
            e
            for e in self.events
            if e.type == "deadline.escalate"
            and e.payload.get("kind") == kind
            and e.payload.get("outcome") == "fired"
        )

    @property
    def warnings(self) -> tuple[Event, ...]:
        """Warning rungs fired (letters, reminders, failed half-time checks)."""
        return self._rungs("warning")

    @property
    def overdue(self) -> tuple[Event, ...]:
        """Overdue rungs fired: one per deadline that passed its due time."""
        return self._rungs("overdue")

    @property
    def recommendations(self) -> tuple[Event, ...]:
        """Recommendations raised for the leading group to decide."""
        return tuple(e for e in self.events if e.type == "recommendation.recommend")

    @property
    def checks_passed(self) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.payload.get("outcome") == "passed")

    @property
    def missing_reports(self) -> tuple[Event, ...]:
        return tuple(
            e for e in self.events if e.type in ("unit.report_missing", "round.bulletin_missing")
        )


_EMPTY = Empty()


@attrs.frozen
class Plan:
    """What a command will do, decided before anything changes."""

    kind: str
    subject: str
    event: str
    from_state: str | None
    to_state: str
    payload: dict[str, Any]

    @property
    def type(self) -> str:
        return f"{self.kind}.{self.event}"


class Engine:
    """Runs commands against rounds kept in an :class:`EventLog`.

    ``clock`` stamps every event (the engine never reads the wall clock);
    ``process`` is the process new rounds are opened with; ``processes`` are older
    versions still needed to load rounds opened under them; ``ids`` makes event ids
    (random UUIDs by default). ``snapshots`` keeps a snapshot of each round every
    ``snapshot_every`` events, authenticated with ``snapshot_key``; ``worker`` and
    ``lease`` name this engine and how long it holds a round (for a sweep) or an
    outbox message (for a delivery) on a shared log. Safe to share between threads:
    commands on one round are serialised, commands on different rounds run in
    parallel.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        log: EventLog | None = None,
        process: Process | None = None,
        processes: Iterable[Process] = (),
        hooks: Hooks | None = None,
        ids: Callable[[], str] | None = None,
        snapshots: SnapshotStore | None = None,
        snapshot_key: HmacKey | None = None,
        snapshot_every: int = 500,
        worker: str | None = None,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        if snapshot_every < 1:
            raise InvalidArgument("snapshot_every must be at least 1")
        if snapshots is not None and snapshot_key is None:
            raise InvalidArgument(
                "snapshots need a key (snapshot_key=HmacKey(...)): a snapshot is the state "
                "the next command is decided on, so it is used only when its HMAC verifies"
            )
        self.clock = clock
        self.snapshots = snapshots
        self.snapshot_key = snapshot_key
        self.snapshot_every = snapshot_every
        self.worker = worker or f"engine-{uuid.uuid4().hex[:12]}"
        """This engine's name in sweep leases on a shared log."""
        self.lease = lease
        self.log: EventLog = log if log is not None else InMemoryEventLog()
        self.hash_algorithm = self.log.hash_algorithm
        """The hash the log chains events with: the engine seals its events with it."""
        self.process = process if process is not None else Process.standard()
        self.hooks = hooks if hooks is not None else Hooks()
        self._ids = ids if ids is not None else (lambda: uuid.uuid4().hex)
        # keyed by everything a round pins (definitions and deadline policy): processes
        # that share a round definition are still different processes
        self._processes: dict[tuple[tuple[str, str], ...], Process] = {}
        for p in (*processes, self.process):
            self._processes[tuple(sorted(p.version_ids.items()))] = p
        self._states: dict[str, RoundState] = {}
        self._snapshot_at: dict[str, int] = {}
        self._due_index: dict[str, DueIndex] = {}
        self._active: set[str] = set()
        self.agenda = Agenda()
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    # -- public API ------------------------------------------------------------------
    def execute(
        self, command: Command | Mapping[str, Any] | str | bytes, *, retries: int = 0
    ) -> tuple[Event, ...]:
        """Apply ``command``; return its events. On any error nothing has changed.

        With ``retries`` > 0 a :class:`ConcurrencyConflict` (another writer appended
        to the round first) reloads the round and decides again, at most that often.
        """
        cmd = parse_command(command)
        for attempt in range(retries + 1):
            try:
                return self._execute(cmd)
            except ConcurrencyConflict:
                if attempt == retries:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def fire(
        self,
        actor: Actor,
        round_id: str,
        kind: SubjectKind,
        subject: str,
        event: str,
        payload: BaseModel | Mapping[str, Any] | None = None,
        *,
        reason: str | None = None,
        attachments: Sequence[str] = (),
        command_id: str | None = None,
    ) -> tuple[Event, ...]:
        """Build a command and :meth:`execute` it."""
        if isinstance(payload, BaseModel):
            data: Any = payload.model_dump(mode="json", exclude_unset=True)
        else:
            data = dict(payload or {})
        return self.execute(
            {
                "command_id": command_id or self._ids(),
                "round_id": round_id,
                "kind": kind,
                "subject": subject,
                "event": event,
                "actor": actor,
                "payload": data,
                "reason": reason,
                "attachments": tuple(attachments),
            }
        )

    def preview(self, command: Command | Mapping[str, Any] | str | bytes) -> Plan:
        """Decide ``command`` without applying it: the same checks and errors as
        :meth:`execute`, but hooks do not run and nothing changes."""
        cmd = parse_command(command)
        with self._lock(cmd.round_id):
            state = self._fresh(cmd.round_id)
            return self._decide(state, self._process_for(state), cmd, self._now())

    def allowed_events(
        self, actor: Actor, round_id: str, kind: SubjectKind, subject: str
    ) -> tuple[str, ...]:
        """Events ``actor`` may fire on the subject now: possible from its state and
        allowed for the actor's role and organization. Guards, which depend on the
        payload, are checked when the event is fired."""
        with self._lock(round_id):
            state = self._fresh(round_id)
            if state.round is None:
                raise NotFound("round", round_id)
            process = self._process_for(state)
            definition = process.definition(kind)
            record = current(state, kind, subject)
            if record is None:
                raise NotFound(kind, subject, round_id)
            ctx = self._context(state, process, kind, subject, record, actor, _EMPTY, (), None)
            allowed = []
            for name in process.machines[kind].triggers(
                definition.state_by_value(record.state).name
            ):
                spec = definition.candidates(name, definition.state_by_value(record.state).name)[0]
                if spec.automatic:
                    continue
                try:
                    authorize(ctx, event=name, roles=spec.roles, independent=spec.independent)
                except PermissionDenied:
                    continue
                allowed.append(name)
            return tuple(allowed)

    def state(self, round_id: str) -> RoundState:
        """The round's current state. Treat it as read-only."""
        with self._lock(round_id):
            state = self._fresh(round_id)
        if state.round is None:
            raise NotFound("round", round_id)
        return state

    def rounds(self) -> list[str]:
        return self.log.streams()

    def replay(self, round_id: str) -> RoundState:
        """Rebuild the round from its log alone, without running guards."""
        return replay(
            round_id,
            self.log.read(round_id),
            self._processes.values(),
            hash_algorithm=self.hash_algorithm,
        )

    def verify(
        self, round_id: str | None = None, *, checkpoints: Checkpoints | None = None
    ) -> LogReport:
        """Check everything this engine's log and caches claim about one round or all:
        the log's own checks (:meth:`EventLog.verify`, with ``checkpoints`` if given),
        then, for each round whose chain holds, that its events replay, that its
        snapshot (if any) equals the replay of its events up to its version and
        verifies with the snapshot key, and that the due index does not hide
        anything due. Findings name the round and, where there is one, the version."""
        return verify_rounds(self, round_id, checkpoints)

    def rebuild_indexes(self) -> int:
        """Rebuild what the log derives from its events (the fired-rung keys and
        projections of a SQL log) and reset every round's due time from its replayed
        state; return the number of rounds reset. For repairing a database after
        :meth:`verify` reported index findings."""
        self.log.rebuild_index()
        now = self._now()
        count = 0
        for stream in self.log.streams():
            with self._lock(stream):
                self._states.pop(stream, None)
                state = self._fresh(stream)
                if state.round is None:
                    continue
                self._due_index.pop(stream, None)
                self.log.reset_due(stream, self._due(state, self._process_for(state), now))
                count += 1
        return count

    def deliver(
        self,
        send: Callable[[Message], object],
        *,
        at: datetime | None = None,
        limit: int | None = None,
    ) -> DeliveryReport:
        """Deliver what the outbox holds: lease up to ``limit`` undelivered messages
        to this engine's worker, call ``send(message)`` for each, and mark it
        delivered when ``send`` returns; when it raises, the error is kept and the
        message is retried after a back-off (:func:`backoff`). At least once: a
        worker that dies before marking leaves the message to be sent again once
        its lease lapses, so ``send`` uses ``message.key`` to drop repeats. Several
        workers may deliver from one log at once (on PostgreSQL they skip each
        other's rows)."""
        now = self._now()
        when = now if at is None else require_aware(at, "at")
        if when > now:
            raise InvalidArgument(f"a delivery cannot look ahead of the clock ({when} > {now})")
        return deliver(self.log, send, at=when, worker=self.worker, lease=self.lease, limit=limit)

    def forget(self, round_id: str) -> None:
        """Drop the cached state of a round; the next use reloads it from the log."""
        with self._lock(round_id):
            self._states.pop(round_id, None)

    @property
    def processes(self) -> tuple[Process, ...]:
        """Every process this engine loads rounds of: those given in ``processes``
        and the current one."""
        return tuple(self._processes.values())

    def process_of(self, round_id: str) -> Process:
        """The process version the round was opened with."""
        return self._process_for(self.state(round_id))

    # -- internals -------------------------------------------------------------------
    def _now(self) -> datetime:
        return require_aware(self.clock.now(), "clock time")

    def _lock(self, stream: str) -> threading.RLock:
        with self._guard:
            lock = self._locks.get(stream)
            if lock is None:
                lock = self._locks[stream] = threading.RLock()
            return lock

    def _from_snapshot(self, stream: str) -> RoundState | None:
        """The round from its latest snapshot plus the events after it, or None when
        there is no usable snapshot (none, damaged, or not on this log's chain)."""
        if self.snapshots is None:
            return None
        snap = self.snapshots.latest(stream)
        key = self.snapshot_key
        if (
            snap is None
            or key is None
            or not snap.authentic(key)
            or snap.version > self.log.version(stream)
        ):
            return None
        events = iter(self.log.read(stream, snap.version - 1))  # the snapshot's event, the tail
        at = next(events, None)
        if at is None or at.version != snap.version or at.hash != snap.head:
            return None
        try:
            state = state_from_json(snap.body)
            process = self._process_for(state)
        except (ValueError, KeyError, TypeError, LogCorrupted, UnknownProcess):
            return None
        if state.stream != stream or state.version != snap.version or state.head != snap.head:
            return None
        definitions = process.definitions
        for event in events:
            if event.computed_hash(self.hash_algorithm) != event.hash:
                raise LogCorrupted(
                    f"event {event.id} does not match its hash",
                    stream=stream,
                    version=event.version,
                )
            apply_event(state, event, definitions)
        return state

    def _maybe_snapshot(self, state: RoundState) -> None:
        """Save a snapshot when the round has grown by ``snapshot_every`` events since
        the last one. A snapshot is a cache: failing to save one is logged, not raised
        (the command has been recorded)."""
        if self.snapshots is None or self.snapshot_key is None:
            return
        last = self._snapshot_at.get(state.stream, 0)
        if state.version - last < self.snapshot_every:
            return
        try:
            self.snapshots.save(Snapshot.of(state, self.snapshot_key))
            self._snapshot_at[state.stream] = state.version
        except Exception:
            _LOG.warning("could not save a snapshot of round %s", state.stream, exc_info=True)

    def _due(
        self,
        state: RoundState,
        process: Process,
        at: datetime,
        events: Sequence[Event] = (),
    ) -> datetime | None:
        """When the round next has something for a sweep, as of ``at``; ``events``
        are the unit of work's, not yet in the round's due index."""
        policy = process.deadlines
        if not policy.rules and not (policy.daily_report or policy.weekly_bulletin):
            return None
        index = self._due_index.get(state.stream)
        touched: set[str] = set()
        if index is None:  # built from the state as it is now, events included
            index = self._due_index[state.stream] = DueIndex(state, policy)
        else:
            touched = {e.subject for e in events if e.kind == "deadline"}
        return round_next_due(state, policy, at, index, touched)

    def _fresh(self, stream: str) -> RoundState:
        """The round's state, reloaded when another writer has appended to its log
        since it was cached, so that commands are decided on current facts."""
        state = self._load(stream)
        if not state.in_unit_of_work and self.log.version(stream) != state.version:
            self._states.pop(stream, None)
            state = self._load(stream)
        return state

    def _load(self, stream: str) -> RoundState:
        state = self._states.get(stream)
        if state is None:
            self._due_index.pop(stream, None)
            state = self._from_snapshot(stream)
            if state is None:
                state = replay(
                    stream,
                    self.log.read(stream),
                    self._processes.values(),
                    hash_algorithm=self.hash_algorithm,
                )
            self._states[stream] = state
            if state.round is not None:
                self._schedule(state, self._process_for(state), None)
        return state

    def _process_for(self, state: RoundState) -> Process:
        if state.round is None:
            return self.process
        pinned = dict(state.round.definitions)
        for process in self._processes.values():
            if process.version_ids == pinned:
                return process
        raise UnknownProcess(
            f"round {state.stream!r} was opened with definitions {pinned}, which this engine "
            "does not know: pass that process in Engine(processes=...)",
            stream=state.stream,
            pinned=pinned,
        )

    @contextmanager
    def _exclusive(self, stream: str) -> Iterator[None]:
        """Hold the round's lock for one unit of work. The lock is re-entrant for the
        thread that holds it, so a hook firing a command on its own round would
        otherwise interleave two units of work: that is refused."""
        with self._lock(stream):
            if stream in self._active:
                raise InvalidCommand(
                    f"a command on round {stream!r} is in progress: a hook may not "
                    "fire commands on the round it runs for"
                )
            self._active.add(stream)
            try:
                yield
            finally:
                self._active.discard(stream)

    def _execute(self, cmd: Command) -> tuple[Event, ...]:
        with self._exclusive(cmd.round_id):
            return self._execute_locked(cmd)

    def _execute_locked(self, cmd: Command) -> tuple[Event, ...]:
        """Decide, apply, hook and append one command; the round's lock is held."""
        state = self._fresh(cmd.round_id)
        if cmd.command_id in state.commands:
            return self._replayed(state, cmd)
        process = self._process_for(state)
        now = self._now()
        _not_behind(state, now)
        plan = self._decide(state, process, cmd, now)
        self.hooks.run_before(BeforeContext(cmd, state, plan.type, plan.from_state, plan.to_state))
        return self._unit_of_work(
            state,
            process,
            cmd,
            lambda: self._apply(state, process, cmd, plan, now),
            lambda events: self._due(state, process, now, events),
        )

    def _unit_of_work(
        self,
        state: RoundState,
        process: Process,
        cmd: Command,
        produce: Callable[[], Sequence[Event]],
        due: Callable[[Sequence[Event]], datetime | None],
    ) -> tuple[Event, ...]:
        """Apply the events ``produce`` makes, run the after hooks and record them
        (with the round's next due time) — or roll the state back exactly."""
        expected = state.version
        state.begin()
        try:
            events = tuple(produce())
            after = AfterContext(cmd, events, state)
            self.hooks.run_after(after)
            messages = [*builtin_messages(events), *self.hooks.messages(after)]
            self.log.record(state.stream, expected, events, due=due(events), messages=messages)
        except ConcurrencyConflict:
            state.rollback()
            self._states.pop(state.stream, None)  # stale: reload on next use
            self._due_index.pop(state.stream, None)
            raise
        except BaseException:
            state.rollback()
            self._due_index.pop(state.stream, None)  # it may have seen the undone events
            raise
        state.commit()
        index = self._due_index.get(state.stream)
        if index is not None:
            for event in events:
                if event.kind == "deadline":
                    index.update(state.deadlines[event.subject])
        self._maybe_snapshot(state)
        self._schedule(state, process, events)
        return events

    # -- time ------------------------------------------------------------------------
    def _schedule(
        self, state: RoundState, process: Process, events: Iterable[Event] | None
    ) -> None:
        """Put what ``events`` (or, with None, the whole state) makes due on the agenda."""
        policy = process.deadlines
        if not policy.rules and not (policy.daily_report or policy.weekly_bulletin):
            return
        stream = state.stream
        if events is None:
            deadlines = [d for d in state.deadlines.values() if d.state == "running"]
            units = [u.id for u in state.units.values() if u.state == "rectifying"]
            rounds = [stream] if state.round is not None and state.round.state == "rectify" else []
            # a round just loaded is checked at once (the checks record each day once),
            # else an engine started for each sweep (a cron job) would never check
            check = self._now()
        else:
            seen = list(events)
            deadlines = [state.deadlines[e.subject] for e in seen if e.kind == "deadline"]
            units = [
                e.subject
                for e in seen
                if e.type in ("unit.approve_plan", "unit.reopen", "unit.order_second_rectification")
            ]
            rounds = [
                stream for e in seen if e.type in ("round.start_rectification", "round.reopen")
            ]
            check = next_check(seen[-1].timestamp if seen else self._now(), policy)
        for deadline in deadlines:
            when = next_time(policy, deadline)
            if when is not None:
                self.agenda.push(when, stream, ("deadline", deadline.id))
        if policy.daily_report:
            for unit_id in units:
                self.agenda.push(check, stream, ("unit", unit_id))
        if policy.weekly_bulletin:
            for _ in rounds[:1]:
                self.agenda.push(check, stream, ("round", stream))

    def sweep(
        self,
        at: datetime | None = None,
        *,
        actor: Actor | None = None,
        select: Callable[[str, AgendaKey], bool] | None = None,
    ) -> SweepReport:
        """Record what is due at ``at`` (the clock's time by default, never later):
        ladder rungs, checks, missing daily reports and weekly bulletins.

        Each round's findings are recorded as one unit of work with ``actor`` (the
        supervision office's sweeper by default); after hooks run inside it (a hook
        that raises leaves nothing recorded for that round and the error propagates;
        rounds swept before it keep their records). ``select`` splits the work
        between workers: only agenda entries it accepts are taken. Every rung fires
        at most once per deadline, however often sweeps run.

        A round whose log fails to load (a corrupted or tampered event), whose
        records the store refuses (:class:`DuplicateKey`) or whose last event is later
        than this engine's clock (:class:`ClockBehind`) is reported in
        :attr:`SweepReport.failed` and skipped, so it does not stop the others; on
        a shared log it stays leased to this worker until the lease lapses. A round
        another writer appends to while it is swept is reloaded and swept again (up
        to ``SWEEP_RETRIES`` times).
        """
        now = self._now()
        at = now if at is None else require_aware(at, "at")
        if at > now:
            raise InvalidCommand(f"a sweep cannot look ahead of the clock ({at} > {now})")
        who = actor if actor is not None else SWEEPER
        claimed = self.log.claim_due(at, worker=self.worker, lease=self.lease)
        if claimed is None:  # no shared due index: this engine's agenda decides
            wanted = self.log.streams()
        else:
            wanted = claimed
            inner = select
            mine = set(claimed)

            def select(stream: str, key: AgendaKey) -> bool:
                return stream in mine and (inner is None or inner(stream, key))

        failed: list[tuple[str, str]] = []
        for stream in list(wanted):
            try:
                with self._lock(stream):
                    self._fresh(stream)
            except (LogCorrupted, UnknownProcess) as exc:
                _LOG.error("round %s cannot be loaded for a sweep: %s", stream, exc)
                failed.append((stream, str(exc)))
                self._states.pop(stream, None)
        unusable = {s for s, _ in failed}
        if claimed is not None:
            claimed = [s for s in claimed if s not in unusable]
            mine -= unusable
        left: set[str] = set()  # rounds with due work another part of the split takes
        taken = self.agenda.take_due(at, select, left)
        by_stream: dict[str, list[AgendaKey]] = {}
        for _, stream, key in taken:
            by_stream.setdefault(stream, []).append(key)
        recorded: list[Event] = []
        done: set[str] = set()
        for stream, keys in by_stream.items():
            try:
                recorded += self._sweep_with_retries(
                    stream, keys, at, now, who, stream in left, select
                )
            except (ClockBehind, DuplicateKey) as exc:
                failed.append((stream, str(exc)))
                self._leave_due(stream, exc, taken, at, claimed)
                done.add(stream)
                continue
            except BaseException:
                # put back what this round and the rounds not swept yet had taken
                for when, s, key in taken:
                    if s not in done:
                        self.agenda.push(when, s, key)
                # end this worker's leases on what it did not sweep: still due now
                for s in claimed or ():
                    if s not in done:
                        self.log.release(s, due=at, worker=self.worker)
                raise
            done.add(stream)
        if claimed is not None:
            # note when the claimed rounds that recorded nothing are due next, and end
            # this worker's lease on them (rounds that recorded did so with the append)
            swept = {e.stream for e in recorded}
            for stream in claimed:
                if stream not in swept:
                    with self._lock(stream):
                        state = self._fresh(stream)
                        due = (
                            at if stream in left else self._due(state, self._process_for(state), at)
                        )
                    self.log.release(stream, due=due, worker=self.worker)
        return SweepReport(at=at, events=tuple(recorded), failed=tuple(failed))

    def _leave_due(
        self,
        stream: str,
        exc: Exception,
        taken: Sequence[tuple[datetime, str, AgendaKey]],
        at: datetime,
        claimed: list[str] | None,
    ) -> None:
        """A round this sweep cannot record for (this worker's clock lags its last
        event, or the store refuses its records: a stray rung key, see :meth:`verify`
        and :meth:`rebuild_indexes`): put its entries back and leave it due."""
        _LOG.error("round %s is not swept: %s", stream, exc)
        for when, s, key in taken:
            if s == stream:
                self.agenda.push(when, s, key)
        if claimed is not None and stream in claimed:
            self.log.release(stream, due=at, worker=self.worker)
            claimed.remove(stream)

    def _sweep_with_retries(
        self,
        stream: str,
        keys: list[AgendaKey],
        at: datetime,
        now: datetime,
        actor: Actor,
        partial: bool,
        select: Callable[[str, AgendaKey], bool] | None,
    ) -> list[Event]:
        """Sweep one round; when another writer appended meanwhile, reload it (which
        puts its deadlines back on the agenda) and sweep what is due again."""
        for attempt in range(SWEEP_RETRIES + 1):
            try:
                return self._sweep_round(stream, keys, at, now, actor, partial)
            except ConcurrencyConflict:
                if attempt == SWEEP_RETRIES:
                    raise
            with self._lock(stream):
                self._fresh(stream)

            def this_round(s: str, key: AgendaKey) -> bool:
                return s == stream and (select is None or select(s, key))

            keys = [key for _, _, key in self.agenda.take_due(at, this_round)]
        raise AssertionError("unreachable")  # pragma: no cover

    def _sweep_round(
        self,
        stream: str,
        keys: list[AgendaKey],
        at: datetime,
        now: datetime,
        actor: Actor,
        partial: bool = False,
    ) -> list[Event]:
        """Sweep what ``keys`` make due in one round. ``partial``: another part of a
        split sweep still has due work on this round, so it stays due in the log."""
        with self._exclusive(stream):
            state = self._fresh(stream)
            process = self._process_for(state)
            policy = process.deadlines
            pending: list[FollowUp] = []
            for what, ident in keys:
                if what == "deadline" and ident in state.deadlines:
                    pending += due_rungs(state, policy, state.deadlines[ident], at)
                elif what == "unit" and ident in state.units:
                    pending += daily_checks(state, ident, at, policy, process.calendars)
                elif what == "round":
                    pending += weekly_checks(state, at, policy)
            events: tuple[Event, ...] = ()
            if pending:
                _not_behind(state, now)
                cmd = Command(
                    command_id=self._ids(),
                    round_id=stream,
                    kind="round",
                    subject=stream,
                    event="sweep",
                    actor=actor,
                )
                events = self._run_batch(state, process, cmd, pending, now, at, partial)
            for what, ident in keys:
                if what == "deadline" and ident in state.deadlines:
                    when = next_time(policy, state.deadlines[ident])
                    if when is not None:
                        self.agenda.push(when, stream, ("deadline", ident))
                elif what == "unit" and state.units[ident].state == "rectifying":
                    self.agenda.push(next_check(at, policy), stream, ("unit", ident))
                elif (
                    what == "round" and state.round is not None and (state.round.state == "rectify")
                ):
                    self.agenda.push(next_check(at, policy), stream, ("round", ident))
            return list(events)

    def _run_batch(
        self,
        state: RoundState,
        process: Process,
        cmd: Command,
        pending: list[FollowUp],
        now: datetime,
        at: datetime,
        partial: bool = False,
    ) -> tuple[Event, ...]:
        """Record automatic events as one unit of work (used by sweeps at ``at``)."""
        return self._unit_of_work(
            state,
            process,
            cmd,
            lambda: self._cascade(state, process, cmd, pending, now),
            lambda events: at if partial else self._due(state, process, at, events),
        )

    def overdue(self, at: datetime | None = None) -> list[tuple[str, Deadline]]:
        """Every running deadline past its due time, as (round id, deadline), across
        the rounds this engine has loaded. A query over all open deadlines: use
        :meth:`sweep` to act on what is due."""
        when = self._now() if at is None else require_aware(at, "at")
        out = []
        for stream, state in list(self._states.items()):
            out += [
                (stream, d)
                for d in state.deadlines.values()
                if d.state == "running" and d.due_at <= when
            ]
        return sorted(out, key=lambda pair: (pair[1].due_at, pair[0], pair[1].id))

    def _replayed(self, state: RoundState, cmd: Command) -> tuple[Event, ...]:
        first, last = state.commands[cmd.command_id]
        events = tuple(e for e in self.log.read(state.stream, first - 1) if e.version <= last)
        head = events[0] if events else None
        if head is None or not self._same_command(state, cmd, head):
            raise InvalidCommand(
                f"command id {cmd.command_id!r} was already used for another command"
            )
        return events

    def _same_command(self, state: RoundState, cmd: Command, head: Event) -> bool:
        """Whether ``head`` (the first event of an applied command) came from ``cmd``:
        same subject, event, actor, payload, reason and attachments."""
        definition = self._process_for(state).definition(cmd.kind)
        if not definition.has_event(cmd.event) or head.type != (
            f"{cmd.kind}.{definition.event(cmd.event).stored}"
        ):
            return False
        model = self.process.payload_model(cmd.kind, cmd.event)
        try:
            payload = model.model_validate(cmd.payload).model_dump(
                mode="json", exclude_unset=bool(getattr(model, "partial", False))
            )
        except ValidationError:
            return False
        recorded = {k: v for k, v in head.payload.items() if k != "definitions"}
        return (
            head.subject == cmd.subject
            and head.actor == cmd.actor
            and recorded == payload
            and head.reason == cmd.reason
            and head.attachments == cmd.attachments
        )

    def _context(
        self,
        state: RoundState,
        process: Process,
        kind: str,
        subject: str,
        record: Any,
        actor: Actor,
        payload: BaseModel,
        attachments: tuple[str, ...],
        reason: str | None,
        now: datetime | None = None,
    ) -> GuardContext:
        return GuardContext(
            state=state,
            kind=kind,
            subject=subject,
            record=record,
            actor=actor,
            payload=payload,
            attachments=attachments,
            reason=reason,
            now=now if now is not None else self._now(),
            policy=process.policy,
            definitions=process.definitions,
        )

    def _decide(self, state: RoundState, process: Process, cmd: Command, now: datetime) -> Plan:
        # not in the engine's name; the payload valid, its dates in the round's window
        admitted = admit(state, process, cmd, now)
        kind, name = cmd.kind, cmd.event
        definition = process.definition(kind)
        if admitted is None:
            known = ", ".join(e.name for e in definition.events)
            message = f"unknown event {name!r} for a {kind}; known: {known}"
            raise InvalidCommand(
                message, [{"loc": ["event"], "msg": message, "type": "unknown_event"}]
            )
        payload = admitted
        model = type(payload)
        creating = name == definition.data.create.event
        if kind == "round":
            if cmd.subject != cmd.round_id:
                raise InvalidCommand(f"a round's subject is its own id {cmd.round_id!r}")
            if creating and state.round is not None:
                raise AlreadyExists("round", cmd.round_id)
        if state.round is None and not (kind == "round" and creating):
            raise NotFound("round", cmd.round_id)
        record = current(state, kind, cmd.subject)
        ctx = self._context(
            state,
            process,
            kind,
            cmd.subject,
            record,
            cmd.actor,
            payload,
            cmd.attachments,
            cmd.reason,
            now,
        )
        data = payload.model_dump(mode="json", exclude_unset=bool(getattr(model, "partial", False)))
        if creating and definition.data.create.automatic:
            raise InvalidCommand(f"a {kind} is opened by the engine, not by a command")
        if creating:
            if record is not None or (kind == "item" and cmd.subject in state.items):
                raise AlreadyExists(kind, cmd.subject)
            create = definition.data.create
            authorize(ctx, event=name, roles=create.roles, independent=False)
            violations = [v for g in create.guards for v in process.guards[g](ctx)]
            if violations:
                raise GuardRejected(
                    subject=f"{kind} {cmd.subject}", event=name, violations=violations
                )
            if kind == "round":
                data["definitions"] = process.version_ids
            return Plan(kind, cmd.subject, name, None, definition.initial.stored, data)
        if record is None:
            raise NotFound(kind, cmd.subject, cmd.round_id)
        source = definition.state_by_value(record.state).name
        candidates = definition.candidates(name, source)
        label = f"{kind} {cmd.subject}"
        if not candidates:
            possible = [
                e
                for e in definition.events_from(source)
                if not definition.candidates(e, source)[0].automatic
            ]
            raise TransitionNotAllowed(subject=label, state=source, event=name, allowed=possible)
        spec = candidates[0]
        if spec.automatic:
            raise InvalidCommand(f"{kind}.{name} is fired by the engine, not by a command")
        authorize(ctx, event=name, roles=spec.roles, independent=spec.independent)
        if spec.reason_required and not (cmd.reason and cmd.reason.strip()):
            message = f"{kind}.{name} requires a reason"
            raise InvalidCommand(message, [{"loc": ["reason"], "msg": message, "type": "missing"}])
        _, dest = process.machines[kind].fire(label, source, name, ctx)
        early = window_violations(
            state,
            process.deadlines,
            kind,
            cmd.subject,
            f"{kind}.{definition.event(name).stored}",
            now,
        )
        if early:
            raise GuardRejected(subject=label, event=name, violations=early)
        return Plan(kind, cmd.subject, name, record.state, definition.state(dest).stored, data)

    def _apply(
        self, state: RoundState, process: Process, cmd: Command, plan: Plan, now: datetime
    ) -> tuple[Event, ...]:
        first = self._emit(state, process, cmd, plan, now, automatic=False)
        return (first, *self._cascade(state, process, cmd, self._after(state, process, first), now))

    def _after(self, state: RoundState, process: Process, event: Event) -> list[FollowUp]:
        """The automatic events ``event`` causes: process follow-ups, then deadlines."""
        name = process.definition(event.kind).event_by_value(event.event).name
        structural: list[FollowUp] = [(k, s, e, {}) for k, s, e in follow_ups(state, event, name)]
        return [
            *structural,
            *deadline_follow_ups(state, event, process.deadlines, process.calendars),
        ]

    def _cascade(
        self,
        state: RoundState,
        process: Process,
        cmd: Command,
        pending: Iterable[FollowUp],
        now: datetime,
    ) -> list[Event]:
        """Record the automatic events in ``pending`` and those they cause in turn."""
        events: list[Event] = []
        queue = deque(pending)
        while queue:
            kind, subject, name, payload = queue.popleft()
            definition = process.definition(kind)
            record = current(state, kind, subject)
            ctx = self._context(
                state, process, kind, subject, record, cmd.actor, _EMPTY, (), None, now
            )
            if name == definition.data.create.event:
                if record is not None:
                    continue
                authorize(ctx, event=name, roles=definition.data.create.roles, independent=False)
                auto = Plan(kind, subject, name, None, definition.initial.stored, payload)
            else:
                if record is None:
                    continue
                source = definition.state_by_value(record.state).name
                candidates = definition.candidates(name, source)
                if not candidates:
                    continue
                authorize(ctx, event=name, roles=candidates[0].roles, independent=False)
                _, dest = process.machines[kind].fire(f"{kind} {subject}", source, name, ctx)
                auto = Plan(
                    kind, subject, name, record.state, definition.state(dest).stored, payload
                )
            events.append(self._emit(state, process, cmd, auto, now, automatic=True))
            queue.extend(self._after(state, process, events[-1]))
        return events

    def _emit(
        self,
        state: RoundState,
        process: Process,
        cmd: Command,
        plan: Plan,
        now: datetime,
        *,
        automatic: bool,
    ) -> Event:
        definition = process.definition(plan.kind)
        event = seal(
            {
                "id": self._ids(),
                "stream": state.stream,
                "version": state.version + 1,
                "type": f"{plan.kind}.{definition.event(plan.event).stored}",
                "subject": plan.subject,
                "actor": cmd.actor,
                "timestamp": now,
                "from_state": plan.from_state,
                "to_state": plan.to_state,
                "payload": plan.payload,
                "reason": None if automatic else cmd.reason,
                "attachments": () if automatic else cmd.attachments,
                "command_id": cmd.command_id,
                "automatic": automatic,
                "definition": definition.version_id,
                "prev_hash": state.head,
            },
            self.hash_algorithm,
        )
        apply_event(state, event, process.definitions)
        return event


def replay(
    stream: str,
    events: Iterable[Event],
    processes: Iterable[Process],
    *,
    hash_algorithm: str = DEFAULT_HASH,
) -> RoundState:
    """Fold ``events`` into a fresh state without running guards; ``hash_algorithm``
    is the hash of the log they come from.

    Raises :class:`LogCorrupted` at the first event that does not fit (wrong
    version, broken hash link, impossible transition, unknown definition), and
    :class:`UnknownProcess` when the round was opened under none of ``processes``.
    """
    known = list(processes)
    state = RoundState(stream, genesis_hash(stream, hash_algorithm))
    definitions: Mapping[str, Definition] | None = None
    for event in events:
        if definitions is None:
            if event.kind != "round" or event.from_state is not None or event.version != 1:
                raise LogCorrupted(
                    f"event {event.id} ({event.type}, version {event.version}) is the first "
                    f"event of round {stream!r} but does not open it",
                    stream=stream,
                    version=event.version,
                )
            # the process the round pinned when it was opened; else one with its
            # round definition (several processes may share a round definition)
            pinned = event.payload.get("definitions")
            process = next((p for p in known if p.version_ids == pinned), None) or next(
                (p for p in known if p.definitions["round"].version_id == event.definition), None
            )
            if process is None:
                raise UnknownProcess(
                    f"round {stream!r} was opened with unknown definition {event.definition!r}"
                    ": pass the process it was opened under in Engine(processes=...)",
                    stream=stream,
                    pinned={str(k): str(v) for k, v in pinned.items()}
                    if isinstance(pinned, dict)
                    else None,
                )
            definitions = process.definitions
        if event.definition != definitions[event.kind].version_id:
            raise LogCorrupted(
                f"event {event.id} was made under {event.definition!r}, not the round's "
                f"{definitions[event.kind].version_id!r}",
                stream=stream,
                version=event.version,
            )
        if event.computed_hash(hash_algorithm) != event.hash:
            raise LogCorrupted(
                f"event {event.id} does not match its hash", stream=stream, version=event.version
            )
        apply_event(state, event, definitions)
    return state


def _not_behind(state: RoundState, now: datetime) -> None:
    """Refuse to stamp an event earlier than the round's last one."""
    if state.at is not None and now < state.at:
        raise ClockBehind(state.stream, now, state.at)

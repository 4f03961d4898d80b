"""The engine: atomic commands over rounds, each an event stream.

:meth:`Engine.execute` takes a :class:`~xuncha_flow.Command`, decides on the
round's current state whether and how it may happen, and either returns the events
it produced — already applied to the state and appended to the log — or raises and
changes nothing. The hook order is documented in ``_hooks.py`` and ``docs/hooks.md``.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from pydantic import BaseModel, ValidationError

from ._clock import Clock, require_aware
from ._commands import Command, SubjectKind, parse_command
from ._definition import Definition
from ._effects import apply_event, current, follow_ups
from ._errors import (
    AlreadyExists,
    ConcurrencyConflict,
    GuardRejected,
    IntegrityError,
    InvalidCommand,
    NotFound,
    PermissionDenied,
    TransitionNotAllowed,
)
from ._events import Event, genesis_hash, seal
from ._hooks import AfterContext, BeforeContext, Hooks
from ._log import EventLog, InMemoryEventLog
from ._model import RoundState
from ._payloads import Empty
from ._process import Process
from ._roles import Actor
from ._rules import GuardContext, authorize

__all__ = ["Engine", "Plan", "replay"]

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
    (random UUIDs by default). Safe to share between threads: commands on one round
    are serialised, commands on different rounds run in parallel.
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
    ) -> None:
        self.clock = clock
        self.log: EventLog = log if log is not None else InMemoryEventLog()
        self.process = process if process is not None else Process.standard()
        self.hooks = hooks if hooks is not None else Hooks()
        self._ids = ids if ids is not None else (lambda: uuid.uuid4().hex)
        self._processes: dict[str, Process] = {}
        for p in (*processes, self.process):
            self._processes[p.definitions["round"].version_id] = p
        self._states: dict[str, RoundState] = {}
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
        cmd = parse_command(command)  # type: ignore[arg-type]  # Mapping is accepted as dict
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
        cmd = parse_command(command)  # type: ignore[arg-type]
        with self._lock(cmd.round_id):
            state = self._load(cmd.round_id)
            return self._decide(state, self._process_for(state), cmd, self._now())

    def allowed_events(
        self, actor: Actor, round_id: str, kind: SubjectKind, subject: str
    ) -> tuple[str, ...]:
        """Events ``actor`` may fire on the subject now: possible from its state and
        allowed for the actor's role and organization. Guards, which depend on the
        payload, are checked when the event is fired."""
        with self._lock(round_id):
            state = self._load(round_id)
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
            state = self._load(round_id)
        if state.round is None:
            raise NotFound("round", round_id)
        return state

    def rounds(self) -> list[str]:
        return self.log.streams()

    def replay(self, round_id: str) -> RoundState:
        """Rebuild the round from its log alone, without running guards."""
        return replay(round_id, self.log.read(round_id), self._processes.values())

    def forget(self, round_id: str) -> None:
        """Drop the cached state of a round; the next use reloads it from the log."""
        with self._lock(round_id):
            self._states.pop(round_id, None)

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

    def _load(self, stream: str) -> RoundState:
        state = self._states.get(stream)
        if state is None:
            state = replay(stream, self.log.read(stream), self._processes.values())
            self._states[stream] = state
        return state

    def _process_for(self, state: RoundState) -> Process:
        if state.round is None:
            return self.process
        pinned = dict(state.round.definitions)
        for process in self._processes.values():
            if process.version_ids == pinned:
                return process
        raise IntegrityError(
            f"round {state.stream!r} was opened with definitions {pinned}, which this engine "
            "does not know: pass that process in Engine(processes=...)",
            stream=state.stream,
        )

    def _execute(self, cmd: Command) -> tuple[Event, ...]:
        with self._lock(cmd.round_id):
            state = self._load(cmd.round_id)
            if cmd.command_id in state.commands:
                return self._replayed(state, cmd)
            process = self._process_for(state)
            now = self._now()
            plan = self._decide(state, process, cmd, now)
            self.hooks.run_before(
                BeforeContext(cmd, state, plan.type, plan.from_state, plan.to_state)
            )
            expected = state.version
            state.begin()
            try:
                events = self._apply(state, process, cmd, plan, now)
                self.hooks.run_after(AfterContext(cmd, events, state))
                self.log.append(cmd.round_id, expected, events)
            except ConcurrencyConflict:
                state.rollback()
                self._states.pop(cmd.round_id, None)
                raise
            except BaseException:
                state.rollback()
                raise
            state.commit()
            return events

    def _replayed(self, state: RoundState, cmd: Command) -> tuple[Event, ...]:
        first, last = state.commands[cmd.command_id]
        events = tuple(e for e in self.log.read(state.stream, first - 1) if e.version <= last)
        head = events[0] if events else None
        if (
            head is None
            or head.subject != cmd.subject
            or head.actor != cmd.actor
            or (head.kind != cmd.kind)
        ):
            raise InvalidCommand(
                f"command id {cmd.command_id!r} was already used for another command"
            )
        return events

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
        kind, name = cmd.kind, cmd.event
        definition = process.definition(kind)
        if not definition.has_event(name):
            known = ", ".join(e.name for e in definition.events)
            raise InvalidCommand(f"unknown event {name!r} for a {kind}; known: {known}")
        model = process.payload_model(kind, name)
        try:
            payload = model.model_validate(cmd.payload)
        except ValidationError as exc:
            errors = [
                {"loc": ["payload", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ]
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
            raise InvalidCommand(f"invalid payload for {kind}.{name}: {detail}", errors) from exc
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
            raise InvalidCommand(f"{kind}.{name} requires a reason")
        _, dest = process.machines[kind].fire(label, source, name, ctx)
        return Plan(kind, cmd.subject, name, record.state, definition.state(dest).stored, data)

    def _apply(
        self, state: RoundState, process: Process, cmd: Command, plan: Plan, now: datetime
    ) -> tuple[Event, ...]:
        events = [self._emit(state, process, cmd, plan, now, automatic=False)]
        queue = deque(follow_ups(state, events[0], plan.event))
        while queue:
            kind, subject, name = queue.popleft()
            definition = process.definition(kind)
            record = current(state, kind, subject)
            source = definition.state_by_value(record.state).name
            candidates = definition.candidates(name, source)
            if not candidates:
                continue
            ctx = self._context(
                state, process, kind, subject, record, cmd.actor, _EMPTY, (), None, now
            )
            authorize(ctx, event=name, roles=candidates[0].roles, independent=False)
            _, dest = process.machines[kind].fire(f"{kind} {subject}", source, name, ctx)
            auto = Plan(kind, subject, name, record.state, definition.state(dest).stored, {})
            events.append(self._emit(state, process, cmd, auto, now, automatic=True))
            queue.extend(follow_ups(state, events[-1], name))
        return tuple(events)

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
            }
        )
        apply_event(state, event, process.definitions)
        return event


def replay(stream: str, events: Iterable[Event], processes: Iterable[Process]) -> RoundState:
    """Fold ``events`` into a fresh state without running guards.

    Raises :class:`IntegrityError` at the first event that does not fit (wrong
    version, broken hash link, impossible transition, unknown definition).
    """
    by_round: dict[str, Process] = {p.definitions["round"].version_id: p for p in processes}
    state = RoundState(stream, genesis_hash(stream))
    definitions: Mapping[str, Definition] | None = None
    for event in events:
        if definitions is None:
            process = by_round.get(event.definition)
            if process is None:
                raise IntegrityError(
                    f"round {stream!r} was opened with unknown definition {event.definition!r}",
                    stream=stream,
                    version=event.version,
                )
            definitions = process.definitions
        if event.definition != definitions[event.kind].version_id:
            raise IntegrityError(
                f"event {event.id} was made under {event.definition!r}, not the round's "
                f"{definitions[event.kind].version_id!r}",
                stream=stream,
                version=event.version,
            )
        if event.computed_hash() != event.hash:
            raise IntegrityError(
                f"event {event.id} does not match its hash", stream=stream, version=event.version
            )
        apply_event(state, event, definitions)
    return state

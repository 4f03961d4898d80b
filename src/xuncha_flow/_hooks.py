"""Host hooks: how an embedding system takes part in a command.

The order, for every command (tested in ``tests/test_hooks.py``):

1. the command is parsed and its payload validated;
2. the subject is looked up, the transition found, the actor authorized and the
   guards evaluated (``transitions`` conditions);
3. **before hooks** run, in registration order, with the planned transition.
   A before hook may refuse the command by raising (:class:`~xuncha_flow.Vetoed`,
   or any error, which is wrapped in :class:`~xuncha_flow.HookFailed`); nothing
   has changed yet;
4. the events are built and applied to the round's state, the command's own event
   first, then the automatic follow-ups it causes;
5. **after hooks** run, in registration order, with all the command's events and
   the new state, inside the command's unit of work: if one raises, the state is
   rolled back and nothing is written;
6. **notifiers** (:meth:`Hooks.notify`) make the command's outbox messages,
   besides the ladder's own (topics warning, overdue, recommendation, decision);
   they only build messages and send nothing;
7. the events, the round's next due time and the messages are recorded in one
   atomic step; a :class:`~xuncha_flow.ConcurrencyConflict` also rolls the state
   back (and the messages are never seen);
8. the events are returned; the messages are delivered later, after commit, by
   :meth:`~xuncha_flow.Engine.deliver`.

After hooks are *transactional*: they may run again when the command is retried
(``execute(..., retries=n)``) or be undone when the append fails, so they must not do
anything that cannot be undone — update rows in the host's own transaction, check,
veto — and never send a letter. What must leave the system goes through the outbox.

A hook registered with ``types`` runs only for commands whose events include one
of those types (``"item.close"``, ``"unit.approve_plan"``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._errors import HookFailed, InvalidArgument, XunchaError
from ._outbox import BUILTIN_TOPICS, Message, Notifier, message_for

if TYPE_CHECKING:
    from ._commands import Command
    from ._events import Event
    from ._model import RoundState

__all__ = ["AfterContext", "BeforeContext", "Hooks"]


@attrs.frozen
class BeforeContext:
    """What a before hook sees: the command and the transition it will make."""

    command: Command
    state: RoundState
    """The round as it is now (read it, do not change it)."""
    type: str
    """``"<kind>.<event>"`` of the command's own event."""
    from_state: str | None
    to_state: str


@attrs.frozen
class AfterContext:
    """What an after hook sees: every event the command produced, and the new state."""

    command: Command
    events: tuple[Event, ...]
    state: RoundState


BeforeHook = Callable[[BeforeContext], Any]
EventHook = Callable[["Event", AfterContext], Any]
_ESCALATE = frozenset({"deadline.escalate"})


def _rung(kind: str | None) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        fired = event.payload.get("outcome", "fired") == "fired"
        return fired and (kind is None or event.payload.get("kind") == kind)

    return match


AfterHook = Callable[[AfterContext], Any]
H = TypeVar("H", bound=Callable[..., Any])


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class Hooks:
    """A registry of before and after hooks. Methods double as decorators."""

    def __init__(self) -> None:
        self._before: list[tuple[BeforeHook, frozenset[str] | None]] = []
        self._after: list[tuple[AfterHook, frozenset[str] | None]] = []
        self._notifiers: list[tuple[str, Notifier, frozenset[str]]] = []

    def before(self, fn: H, *, types: Collection[str] | None = None) -> H:
        self._before.append((fn, frozenset(types) if types is not None else None))
        return fn

    def after(self, fn: H, *, types: Collection[str] | None = None) -> H:
        self._after.append((fn, frozenset(types) if types is not None else None))
        return fn

    def on(self, *types: str) -> Callable[[H], H]:
        """Decorator: ``@hooks.on("item.close")`` registers an after hook for those types."""

        def register(fn: H) -> H:
            return self.after(fn, types=types)

        return register

    def on_event(
        self,
        fn: EventHook,
        *,
        types: Collection[str],
        where: Callable[[Event], bool] | None = None,
    ) -> EventHook:
        """Register ``fn(event, ctx)``, called once per matching event of a command,
        in log order, inside the command's unit of work (an after hook)."""
        wanted = frozenset(types)

        def hook(ctx: AfterContext) -> None:
            for event in ctx.events:
                if event.type in wanted and (where is None or where(event)):
                    fn(event, ctx)

        hook.__qualname__ = _name(fn)
        self.after(hook, types=wanted)
        return fn

    def on_warning(self, fn: EventHook) -> EventHook:
        """A warning rung fired (a letter or reminder is due, a half-time check
        failed). A transactional after hook: record, check, veto; the letter itself
        is sent from the outbox (topic ``"warning"``, :meth:`Engine.deliver
        <xuncha_flow.Engine.deliver>`)."""
        return self.on_event(fn, types=_ESCALATE, where=_rung("warning"))

    def on_overdue(self, fn: EventHook) -> EventHook:
        """A deadline passed its due time: its overdue rung fired."""
        return self.on_event(fn, types=_ESCALATE, where=_rung("overdue"))

    def on_escalation(self, fn: EventHook) -> EventHook:
        """Any rung fired: warnings, the overdue rung and recommendations alike."""
        return self.on_event(fn, types=_ESCALATE, where=_rung(None))

    def on_recommendation(self, fn: EventHook) -> EventHook:
        """A recommendation (accountability, talk, public naming...) awaits a decision."""
        return self.on_event(fn, types={"recommendation.recommend"})

    def on_decision(self, fn: EventHook) -> EventHook:
        """The leading group confirmed or dismissed a recommendation."""
        return self.on_event(fn, types={"recommendation.confirm", "recommendation.dismiss"})

    def notify(self, topic: str, fn: Notifier, *, types: Collection[str]) -> Notifier:
        """Register a notifier: for each event of a command whose type is in
        ``types``, ``fn(event, ctx)`` returns the body of a message on ``topic``
        (JSON values) or None. The message is written to the outbox with the events
        and delivered after commit (:meth:`~xuncha_flow.Engine.deliver`), keyed by
        event id and topic. ``fn`` runs inside the unit of work and must send
        nothing; if it raises, the command is rolled back (:class:`HookFailed`)."""
        if not topic or topic in BUILTIN_TOPICS or len(topic) > 100:
            raise InvalidArgument(
                f"a notifier's topic is a name of at most 100 characters other than the "
                f"engine's own ({', '.join(BUILTIN_TOPICS)}), not {topic!r}"
            )
        self._notifiers.append((topic, fn, frozenset(types)))
        return fn

    def messages(self, ctx: AfterContext) -> list[Message]:
        """The outbox messages the registered notifiers make for ``ctx.events``."""
        out = []
        for event in ctx.events:
            for topic, fn, types in self._notifiers:
                if event.type not in types:
                    continue
                try:
                    body = fn(event, ctx)
                except XunchaError:
                    raise
                except Exception as exc:
                    raise HookFailed(
                        hook=_name(fn), phase="notify", message=f"{type(exc).__name__}: {exc}"
                    ) from exc
                if body is not None:
                    out.append(message_for(event, topic, body))
        return out

    def run_before(self, ctx: BeforeContext) -> None:
        for fn, types in self._before:
            if types is None or ctx.type in types:
                _call(fn, ctx, "before")

    def run_after(self, ctx: AfterContext) -> None:
        seen = {e.type for e in ctx.events}
        for fn, types in self._after:
            if types is None or seen & types:
                _call(fn, ctx, "after")

    def __len__(self) -> int:
        return len(self._before) + len(self._after) + len(self._notifiers)


def _call(fn: Callable[[Any], Any], ctx: Any, phase: str) -> None:
    try:
        fn(ctx)
    except XunchaError:
        raise
    except Exception as exc:
        raise HookFailed(
            hook=_name(fn), phase=phase, message=f"{type(exc).__name__}: {exc}"
        ) from exc

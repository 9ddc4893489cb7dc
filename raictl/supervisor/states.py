"""The one vocabulary of a service's states, its named groups, and the transitions allowed.

    stopped ──up──▶ backoff ──spawn──▶ starting ──ready──▶ running ◀──▶ unhealthy
       ▲              ▲  │               │                   │             │
       │              │  └──(too many)───┴───▶ fatal ◀───────┴─────────────┘
       └──── down ────┴──── exit: backoff again (delay doubling), or fatal

`stopped`: not wanted (or never started); `backoff`: wanted, waiting for its next start;
`starting`: spawned, not yet ready; `running`: ready (alive, every address accepts, health 200);
`unhealthy`: running but failing its liveness probe (issue 11: restarted by the loop);
`fatal`: too many failed starts, not restarted until asked for again.

The strings are the interface (state.json, `status --json`); a transition happens in one place,
`ServiceRecord.change_state`, which refuses one this table does not allow. Stdlib only.
"""

from __future__ import annotations

from typing import Literal

State = Literal["starting", "running", "unhealthy", "backoff", "stopped", "fatal"]

STARTING: State = "starting"
RUNNING: State = "running"
UNHEALTHY: State = "unhealthy"
BACKOFF: State = "backoff"
STOPPED: State = "stopped"
FATAL: State = "fatal"

STATES: tuple[State, ...] = (RUNNING, STARTING, UNHEALTHY, BACKOFF, STOPPED, FATAL)

ALIVE = frozenset({STARTING, RUNNING, UNHEALTHY})    # a process of it exists
ACTIVE = ALIVE | {BACKOFF}                            # the supervisor keeps it going: its loop has work
STOPPED_STATES = frozenset({STOPPED, FATAL})         # nothing runs and nothing will by itself
PENDING = frozenset({STARTING, BACKOFF})             # about to change: the loop ticks fast
TROUBLED = frozenset({STARTING, BACKOFF, UNHEALTHY, FATAL})  # not serving, and the supervisor knows why

TRANSITIONS: dict[State, frozenset[State]] = {
    STOPPED: frozenset({BACKOFF}),
    FATAL: frozenset({BACKOFF}),
    BACKOFF: frozenset({STARTING, BACKOFF, FATAL, STOPPED}),  # backoff again: it could not be spawned
    STARTING: frozenset({RUNNING, BACKOFF, FATAL, STOPPED}),
    RUNNING: frozenset({UNHEALTHY, BACKOFF, FATAL, STOPPED}),
    UNHEALTHY: frozenset({RUNNING, BACKOFF, FATAL, STOPPED}),
}


class InvalidTransition(AssertionError):
    """A bug in the supervisor: a state change the table above does not allow."""


def check_transition(old: str, new: State) -> None:
    """Nothing when `old -> new` is allowed; InvalidTransition otherwise. A state this version does
    not know (an older or newer state.json) may only become `backoff` or `stopped`."""
    allowed = TRANSITIONS.get(old, frozenset({BACKOFF, STOPPED}))  # type: ignore[call-overload]
    if new not in allowed:
        raise InvalidTransition(f"service state {old} -> {new} is not allowed "
                                f"(from {old}: {', '.join(sorted(allowed))})")

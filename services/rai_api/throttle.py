"""Failed logins, limited (issue 13): per username and per client address, in the database.

A username that failed LOGIN_LIMIT times within WINDOW_S seconds (from its first failure), or an address
that failed ADDRESS_LIMIT times, is answered `429 rate_limited` with `Retry-After` until that window
ends, without its password being checked (the right password does not get through either). Only real
failed checks count, not refused attempts, so hammering one account locks that account, not the other
users behind the same address; spraying many accounts from one address locks the address. An attempt
is counted before its password is hashed (`admit`, under the hashing slot: within a process no
concurrent attempt gets past the limit) and taken back when it succeeds, which also clears the
username's count.

The counts live in the `login_failures` table, so every RAI API process sharing the database enforces
the same limits; across processes a few concurrent attempts may pass as a window fills (at most their
hashing slots, services.rai_api.auth.HashGate). A process also keeps the locks it has seen in memory
until their window ends, so a flood on a locked account costs no database read. On a database behind
revision 0003 (no such table: health says `behind`) logins are served unlimited, with a warning in the
log, rather than refused.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from raishared.database import is_schema_error
from services.rai_api.db import Database
from services.rai_api.errors import ApiError
from services.rai_api.models import Base, LoginFailure

LOGIN_LIMIT = 5  # failed logins of one username
ADDRESS_LIMIT = 50  # failed logins from one client address, whatever the usernames
WINDOW_S = 300
SUBJECT_CHARS = 120
LOCKS_KEPT = 10_000  # locked subjects remembered in memory before the expired ones are dropped

_t = Base.metadata.tables[LoginFailure.__tablename__]
_SUBJECTS = sa.select(_t.c.subject, _t.c.failures, _t.c.window_start).where(
    _t.c.subject.in_(sa.bindparam("subjects", expanding=True)))
_COUNT = (sa.update(_t).where(_t.c.subject == sa.bindparam("s"), _t.c.window_start > sa.bindparam("since"))
          .values(failures=_t.c.failures + 1))
_RESTART = (sa.update(_t).where(_t.c.subject == sa.bindparam("s"))
            .values(failures=1, window_start=sa.bindparam("now")))
_CLEAR = sa.delete(_t).where(_t.c.subject == sa.bindparam("s"))
_UNCOUNT = (sa.update(_t).where(_t.c.subject == sa.bindparam("s"), _t.c.failures > 0)
            .values(failures=_t.c.failures - 1))
log = logging.getLogger(__name__)


def _rate_limited(wait: float) -> ApiError:
    seconds = max(1, math.ceil(wait))
    return ApiError(429, "rate_limited", f"too many failed logins: try again in {seconds} s",
                    headers={"Retry-After": str(seconds)})


@dataclass(frozen=True)
class Attempt:
    """Who is trying: the subjects counted for one login."""

    username: str
    address: str

    @property
    def subjects(self) -> dict[str, int]:
        return {f"user:{self.username}"[:SUBJECT_CHARS]: LOGIN_LIMIT,
                f"addr:{self.address}"[:SUBJECT_CHARS]: ADDRESS_LIMIT}


class LoginThrottle:
    """Checks and records failed logins in the database; `clock` gives whole seconds (tests pass a fake)."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self.db, self.clock = db, clock
        # subject -> the end of its window, for the subjects this process found over their limit: they
        # are refused again without a database read (a flood of refused attempts then costs what any
        # request does). Nothing can lift such a lock early: every process refuses its logins.
        self._locked: dict[str, int] = {}

    @contextmanager
    def _table(self, write: bool = False) -> Iterator[sa.Connection]:
        """A transaction on the table; when the schema lacks it (behind revision 0003), the block is cut short
        and nothing is counted."""
        try:
            with self.db.transaction(write=write) as connection:
                yield connection
        except DBAPIError as exc:
            if not is_schema_error(exc):
                raise
            log.warning("failed logins are not limited: the database has no login_failures table yet "
                        "(run `raictl migrate`)")

    def check(self, attempt: Attempt) -> None:
        """429 `rate_limited` (Retry-After) when the username or the address is over its limit (a read,
        none once this process has seen the lock: a flood of refused attempts costs no write and no hash)."""
        now = int(self.clock())
        waits = [until - now for subject in attempt.subjects if (until := self._locked.get(subject, 0)) > now]
        if waits:
            raise _rate_limited(max(waits))
        with self._table() as connection:
            self._refuse_if_over(connection, attempt)

    def admit(self, attempt: Attempt) -> None:
        """Check again and count this attempt as a failure, in one write transaction, before its password
        is hashed: concurrent attempts cannot all pass a count not yet written. `succeeded` takes it back."""
        with self._table(write=True) as connection:
            self._refuse_if_over(connection, attempt)
            self._count_all(connection, attempt)

    def _refuse_if_over(self, connection: sa.Connection, attempt: Attempt) -> None:
        now, limits = int(self.clock()), attempt.subjects
        rows = connection.execute(_SUBJECTS, {"subjects": list(limits)}).all()
        over = {r.subject: r.window_start + WINDOW_S for r in rows
                if r.failures >= limits[r.subject] and now < r.window_start + WINDOW_S}
        if over:
            self._remember(over, now)
            raise _rate_limited(max(over.values()) - now)

    def _remember(self, locked: dict[str, int], now: int) -> None:
        if len(self._locked) > LOCKS_KEPT:  # only subjects that failed their limit in full get here
            self._locked = {s: until for s, until in self._locked.items() if until > now}
        self._locked.update(locked)

    def failed(self, attempt: Attempt) -> None:
        """Count one failed login for the username and the address (a window restarts once over)."""
        with self._table(write=True) as connection:
            self._count_all(connection, attempt)

    def _count_all(self, connection: sa.Connection, attempt: Attempt) -> None:
        now = int(self.clock())
        for subject in attempt.subjects:
            self._count(connection, subject, now)

    def _count(self, connection: sa.Connection, subject: str, now: int) -> None:
        params = {"s": subject, "since": now - WINDOW_S, "now": now}
        if connection.execute(_COUNT, params).rowcount or connection.execute(_RESTART, params).rowcount:
            return
        try:  # a failed INSERT undoes only itself, on SQLite and MariaDB alike
            connection.execute(sa.insert(_t), {"subject": subject, "failures": 1, "window_start": now})
        except IntegrityError:  # another process inserted it first
            connection.execute(_COUNT, params)

    def succeeded(self, attempt: Attempt) -> None:
        """The right password: the username's count starts again, and the address's loses the attempt
        `admit` counted (a success is no failure)."""
        user, address = attempt.subjects
        with self._table(write=True) as connection:
            connection.execute(_CLEAR, {"s": user})
            connection.execute(_UNCOUNT, {"s": address})

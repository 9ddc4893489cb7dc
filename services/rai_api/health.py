"""The RAI API's health: the database, its schema state and the LLM API, each really checked.

The checks are cached for a few seconds so a health probe stays as cheap as a hello-world while
still noticing within seconds that the database or the LLM API went away. Once a value is stale it
is still served while one background thread checks again: a health request never waits on the LLM
API (or the database) behind a slow check; only the very first one, at start-up, runs inline.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable

import sqlalchemy as sa

from services.rai_api.db import Database
from services.rai_api.llm_client import LlmClient, LlmUnavailable
from services.rai_api.schema import read_state

log = logging.getLogger(__name__)

DATABASE_TTL_S = 5.0
LLM_TTL_S = 1.5


class Cached:
    """`compute()`'s last value; once it is `ttl` seconds old, one background thread computes the next
    while the stale one is served (the first value is computed inline)."""

    def __init__(self, compute: Callable[[], Any], ttl: float) -> None:
        self.compute, self.ttl = compute, ttl
        self._value: Any = None
        self._at = float("-inf")
        self._lock = threading.Lock()
        self._refreshing = False

    def get(self) -> Any:
        if time.monotonic() - self._at < self.ttl:
            return self._value
        with self._lock:
            if self._value is None:
                self._value, self._at = self.compute(), time.monotonic()
            elif not self._refreshing and time.monotonic() - self._at >= self.ttl:
                self._refreshing = True
                threading.Thread(target=self._refresh, name="health-check", daemon=True).start()
            return self._value

    def _refresh(self) -> None:
        try:
            value = self.compute()
        finally:
            with self._lock:
                self._refreshing = False
        with self._lock:
            self._value, self._at = value, time.monotonic()


def check_database(db: Database) -> dict[str, str]:
    """{"database_status": ok|error, "schema": ok|behind|unknown_revision|drift|unknown}."""
    try:
        with db.engine.connect() as connection:
            state = read_state(connection)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("database check failed: %s", str(getattr(exc, "orig", None) or exc).partition("\n")[0])
        return {"database_status": "error", "schema": "unknown"}
    return {"database_status": "ok", "schema": state.health}


def check_llm(llm: LlmClient) -> dict[str, Any]:
    """{"llm_status": ok|degraded|unreachable, "llm_engine": str|None} from the LLM API's own health."""
    # llm_url: which LLM API this process calls, so `raictl doctor` (wiring.live) can compare it
    # with the LLM API that actually runs (the troubleshooting log's 6001/6201/6301 mix-up).
    try:
        health = llm.health()
    except LlmUnavailable as exc:
        return {"llm_status": "unreachable", "llm_engine": None, "llm_url": llm.base_url, "llm_detail": str(exc)}
    status = health.get("status") if health.get("status") in ("ok", "degraded") else "degraded"
    return {"llm_status": status, "llm_engine": health.get("engine"), "llm_url": llm.base_url}


class HealthReport:
    """Builds the health document from the cached checks (rendered once per change of either)."""

    def __init__(self, db: Database, llm: LlmClient) -> None:
        self.database = Cached(lambda: check_database(db), DATABASE_TTL_S)
        self.llm = Cached(lambda: check_llm(llm), LLM_TTL_S)
        self._rendered: tuple[Any, Any, bytes, int] | None = None

    def rendered(self) -> tuple[bytes, int]:
        """(the health document as JSON bytes, HTTP status), re-rendered only when a check was redone."""
        database, llm = self.database.get(), self.llm.get()
        rendered = self._rendered
        if rendered is None or rendered[0] is not database or rendered[1] is not llm:
            body, status = self._document(database, llm)
            rendered = self._rendered = (database, llm, json.dumps(body).encode(), status)
        return rendered[2], rendered[3]

    @staticmethod
    def _document(database: dict[str, Any], llm: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """(health JSON, HTTP status): 503 only when the database cannot be reached at all."""
        healthy = database["database_status"] == "ok" and database["schema"] == "ok" and llm["llm_status"] == "ok"
        body = {"status": "ok" if healthy else "degraded", "service": "rai-chat-api", **database, **llm}
        return body, 200 if database["database_status"] == "ok" else 503

"""The LLM API's runtime state: the engine in use, why it was chosen, and its last upstream error.

Health reads this state and never calls Gemini itself (it is polled often); `probe` is the one
deliberate exception, for `GET /api/health?deep=1`: at most one real call per PROBE_INTERVAL_S, whatever
the request rate (issue 13: the endpoint is unauthenticated and any web page can request it, so each
call spent the user's Gemini quota). Between probes, and while one is running, deep health answers
with the state as it stands: the last probe's outcome, or a later request's.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Generator

from services.llm_api.engines import Delta, Engine, EngineError, Message, Prompt, Reply, UnavailableEngine
from services.waiting import WaitingLimit

log = logging.getLogger(__name__)
PROBE = Prompt((Message("user", "Reply with the single word: ok"),), temperature=0.0)
PROBE_INTERVAL_S = 30.0


class EngineState:
    """Wraps the engine: every generate records its outcome, so health can tell what happened last;
    at most `limit` calls wait on the engine at once (one more is 503 busy at once)."""

    def __init__(self, engine: Engine, fallback_reason: str | None, limit: WaitingLimit,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.fallback_reason, self.limit, self.clock = engine, fallback_reason, limit, clock
        self._lock = threading.Lock()
        self._probing = threading.Lock()
        self._probed_at: float | None = None
        self._last_error = engine.reason if isinstance(engine, UnavailableEngine) else None

    @property
    def last_error(self) -> str | None:
        with self._lock:
            return self._last_error

    def generate(self, prompt: Prompt) -> Reply:
        """The engine's reply; an engine failure is logged, kept as `last_error` and re-raised."""
        try:
            with self.limit.slot():
                reply = self.engine.generate(prompt)
        except EngineError as exc:
            log.warning("%s engine failed: %s: %s", self.engine.name, exc.code, exc.message)
            self._record(exc.message)
            raise
        self._record(None)
        return reply

    def stream(self, prompt: Prompt) -> Generator[Delta | Reply, None, None]:
        """The engine's stream; its outcome is recorded like generate's (a stream the client
        abandoned records nothing: it neither failed nor completed). It holds a slot of the limit
        from its first step until it ends or is closed."""
        with self.limit.slot():
            try:
                yield from self.engine.stream(prompt)
            except EngineError as exc:
                log.warning("%s engine failed: %s: %s", self.engine.name, exc.code, exc.message)
                self._record(exc.message)
                raise
        self._record(None)

    def probe(self) -> bool:
        """One minimal real call (deep health), unless one ran within PROBE_INTERVAL_S or is running now;
        its outcome becomes the state health reports. True when this call probed."""
        if not self._probing.acquire(blocking=False):
            return False  # another request is probing: never a second call, never a wait
        try:
            if self._probed_at is not None and self.clock() - self._probed_at < PROBE_INTERVAL_S:
                return False
            self._probed_at = self.clock()
            try:
                self.generate(PROBE)
            except EngineError:
                pass  # recorded as last_error by generate
            return True
        finally:
            self._probing.release()

    def health(self) -> dict[str, Any]:
        last_error = self.last_error
        return {"status": "degraded" if last_error else "ok", "service": "llm-api",
                "engine": self.engine.name, "model": self.engine.model,
                "fallback_reason": self.fallback_reason, "last_error": last_error}

    def _record(self, error: str | None) -> None:
        if isinstance(self.engine, UnavailableEngine):
            return  # its reason stays: nothing can have fixed it while running
        with self._lock:
            self._last_error = error

"""How many requests may wait on the LLM at once in a service, and what the next one gets: an
immediate `503 busy` with `Retry-After`, never a place in a queue.

waitress serves every request on a thread of a fixed pool, so a request waiting on a slow model
holds a thread for as long as the model takes (issue 12 measured 8 slow chats freezing every
endpoint). Each service therefore runs `max_waiting + BASE_THREADS` threads and lets LLM-bound
work hold at most `max_waiting` of them: health, login, sessions and memory commands always find
a free thread, however slow the model. A waiting request costs a thread's stack and a socket
(bench/bench_slow_llm.py measures the memory).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from services.http_json import JsonError

# Threads for everything that is not waiting on the LLM: measured with bench/bench_api.py at 16
# connections, 8 threads beat 4 and 16 for the short requests (less GIL contention).
BASE_THREADS = 8
RETRY_AFTER_S = 1


class Busy(JsonError):
    """503 busy: every LLM slot is taken; the client may retry after RETRY_AFTER_S."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "busy", message)
        self.headers = {"Retry-After": str(RETRY_AFTER_S)}


class WaitingLimit:
    """At most `limit` requests hold a slot at once; `enter` past that raises Busy at once."""

    def __init__(self, limit: int, setting: str) -> None:
        self.limit, self.setting = limit, setting
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._held = 0

    @property
    def waiting(self) -> int:
        """How many slots are held now."""
        return self._held

    def enter(self) -> None:
        if not self._slots.acquire(blocking=False):
            raise Busy(f"{self.limit} requests are already waiting on the LLM (the limit, {self.setting}); "
                       f"retry in {RETRY_AFTER_S}s")
        with self._lock:
            self._held += 1

    def leave(self) -> None:
        with self._lock:
            self._held -= 1
        self._slots.release()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the `with` block (Busy when there is none)."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

"""The RAI API's client of the LLM API (`LLM_API_URL`): generate a reply (whole or streamed), read its health.

Calls share a pool of keep-alive connections to the LLM API (a new TCP connection and urllib's
opener chain per chat turn cost more than the mock's whole reply). Every failure becomes
`LlmUnavailable(reason)` naming the URL and what went wrong (refused, timed out, an error the LLM
API reported), which chat turns into 503 `llm_unavailable`: never the troubleshooting log's
"I encountered an internal error".
"""

from __future__ import annotations

import http.client
import json
import socket
import queue
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

from services import sse
from services.waiting import Busy, WaitingLimit

HEALTH_TIMEOUT_S = 1.0
# The RAI API waits LLM_TIMEOUT_S and this much more, so the LLM API's own timeout (which names
# Gemini and its URL) is what a user sees when Gemini is slow.
TIMEOUT_MARGIN_S = 5.0
# A kept-alive connection the server closed meanwhile fails like this; one fresh try is safe.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class LlmUnavailable(Exception):
    """The LLM API could not give a reply; the message says why."""


def request_body(system: str, messages: list[dict[str, str]], stream: bool) -> bytes:
    """The /api/generate body: UTF-8 JSON, not ASCII-escaped (an emoji is 4 bytes, not 12), the size
    memory.prompt_size budgets for, plus `"stream": true` for a stream."""
    body: dict[str, Any] = {"messages": messages, "system": system}
    if stream:
        body["stream"] = True
    return json.dumps(body, ensure_ascii=False).encode()


def _reason(exc: BaseException, timeout: float | None = None) -> str:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        if timeout is None or timeout <= TIMEOUT_MARGIN_S:
            return "it did not answer in time"
        return (f"it did not answer within {timeout:g}s (LLM_TIMEOUT_S={timeout - TIMEOUT_MARGIN_S:g}s "
                f"+ {TIMEOUT_MARGIN_S:g}s)")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"  # chat's hint says what to do: it knows what runs
    if isinstance(exc, socket.gaierror):
        return f"its host name does not resolve ({exc.strerror})"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _error_message(payload: bytes) -> str:
    try:
        body = json.loads(payload)
    except ValueError:
        return payload[:200].decode(errors="replace")
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body)[:200]


def _busy(status: int, payload: bytes, where: str) -> Busy | None:
    """The LLM API's own 503 busy, passed on as ours (the client should retry, not call it down)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if status == 503 and isinstance(body, dict) and body.get("error") == "busy":
        return Busy(f"{where} is busy: {body.get('message')}")
    return None


class LlmClient:
    """Talks to one LLM API base URL (http or https, optionally with a path prefix). At most `limit`
    calls wait on it at once (a reply being streamed holds its slot until closed): one more is Busy."""

    def __init__(self, base_url: str, timeout_s: float, limit: WaitingLimit) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout_s + TIMEOUT_MARGIN_S
        self.limit = limit
        parts = urlsplit(self.base_url)
        self._https, self._host, self._port = parts.scheme == "https", parts.hostname or "", parts.port
        self._prefix = parts.path
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """(an idle kept-alive connection, True), or (a new one, False). Connections are shared by
        all threads and taken only for a call, so there are as many as calls at once (bounded by
        the limit), not one per waitress thread (hundreds: more than the LLM API would accept)."""
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            return kind(self._host, self._port, timeout=self.timeout), False

    def _give_back(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse | None) -> None:
        """Keep `conn` for the next call when its response was read to the end, else close it."""
        if response is not None and response.isclosed() and not response.will_close:
            self._idle.put(conn)
        else:
            conn.close()

    def _exchange(self, method: str, path: str, data: bytes | None, timeout: float) -> tuple[int, bytes]:
        conn, response = self._open(method, path, data, timeout)
        try:
            payload = response.read()
        except BaseException:  # whatever stopped it mid-read (even an interrupt): never reuse the connection
            conn.close()
            raise
        self._give_back(conn, response)
        return response.status, payload

    def _open(self, method: str, path: str, data: bytes | None, timeout: float,
              accept: str = "application/json") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a request on a connection; (the connection, its response with the body unread)."""
        for _ in range(2):
            conn, reused = self._connection()
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, self._prefix + path, body=data,
                             headers={"Content-Type": "application/json", "Accept": accept})
                return conn, conn.getresponse()
            except _STALE:
                conn.close()
                if not reused:
                    raise
            except BaseException:  # whatever stopped it mid-exchange (even an interrupt): never reuse the connection
                conn.close()
                raise
        raise ConnectionResetError("the connection was reset twice")  # not reached: the 2nd try is fresh

    def _call(self, method: str, path: str, data: bytes | None, timeout: float,
              any_status: bool = False) -> dict[str, Any]:
        where = f"the LLM API at {self.base_url}"
        try:
            status, payload = self._exchange(method, path, data, timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise LlmUnavailable(f"{where} is unreachable: {_reason(exc, timeout)}") from None
        if status != 200 and not any_status:
            raise _busy(status, payload, where) or LlmUnavailable(f"{where} answered {status}: {_error_message(payload)}")
        try:
            answer = json.loads(payload)
        except ValueError:
            raise LlmUnavailable(f"{where} answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise LlmUnavailable(f"{where} answered an unexpected document")
        return answer

    def generate(self, system: str, messages: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
        """(reply text, usage) for `messages` under the `system` prompt."""
        with self.limit.slot():
            body = self._call("POST", "/api/generate", request_body(system, messages, stream=False), self.timeout)
        if not isinstance(body.get("text"), str):
            raise LlmUnavailable(f"the LLM API at {self.base_url} answered without a reply text")
        usage = body.get("usage")
        return body["text"], usage if isinstance(usage, dict) else {}

    def stream(self, system: str, messages: list[dict[str, str]]) -> "Upstream":
        """The LLM API's reply as a stream, opened: a failure to get one (unreachable, an error
        status) raises LlmUnavailable (or Busy) here, before anything was streamed. The stream holds
        a slot of the limit until it is closed."""
        self.limit.enter()
        try:
            conn, response = self._open_stream(request_body(system, messages, stream=True))
        except BaseException:
            self.limit.leave()
            raise

        def release() -> None:
            self._give_back(conn, response)
            self.limit.leave()
        return Upstream(response, f"the LLM API at {self.base_url}", release, self.timeout)

    def _open_stream(self, data: bytes) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        where = f"the LLM API at {self.base_url}"
        try:
            conn, response = self._open("POST", "/api/generate", data, self.timeout, accept=sse.MIMETYPE)
        except (OSError, http.client.HTTPException) as exc:
            raise LlmUnavailable(f"{where} is unreachable: {_reason(exc, self.timeout)}") from None
        if response.status != 200 or response.getheader("Content-Type", "").split(";")[0] != sse.MIMETYPE:
            try:
                payload = response.read()
            except (OSError, http.client.HTTPException):
                payload = b""
            self._give_back(conn, response)
            status = f"answered {response.status}" if response.status != 200 else "answered without a stream"
            raise _busy(response.status, payload, where) or LlmUnavailable(f"{where} {status}: {_error_message(payload)}")
        return conn, response

    def health(self) -> dict[str, Any]:
        """The LLM API's health document (short timeout), whatever its status code; LlmUnavailable
        when there is none to read."""
        return self._call("GET", "/api/health", None, HEALTH_TIMEOUT_S, any_status=True)


@dataclass
class Upstream:
    """An open stream from the LLM API: iterate for the reply's text pieces; `done` then holds the
    LLM API's final event ({"engine", "model", "usage"}). A failure mid-stream (an `error` event, a
    timeout, a cut connection) raises LlmUnavailable. `close()` abandons it (and its connection)."""

    response: http.client.HTTPResponse
    where: str
    release: Any = field(repr=False)  # gives the connection (kept if read to its end) and the limit's slot back
    timeout: float = 0.0
    done: dict[str, Any] | None = None
    _closed: bool = field(default=False, repr=False)

    def __iter__(self) -> Iterator[str]:
        try:
            for event in sse.read_events(self.response):
                if event.name == "delta" and isinstance(event.data, dict):
                    yield str(event.data.get("text", ""))
                elif event.name == "done":
                    self.done = event.data if isinstance(event.data, dict) else {}
                elif event.name == "error":
                    raise LlmUnavailable(f"{self.where} failed mid-reply: {_error_message(json.dumps(event.data).encode())}")
        except (OSError, http.client.HTTPException) as exc:
            raise LlmUnavailable(f"{self.where} failed mid-reply: {_reason(exc, self.timeout)}") from None
        if self.done is None:
            raise LlmUnavailable(f"{self.where} ended its reply without a done event")

    def close(self) -> None:
        """Give the connection (kept when the stream was read to its end) and the slot back, once."""
        if not self._closed:
            self._closed = True
            self.release()

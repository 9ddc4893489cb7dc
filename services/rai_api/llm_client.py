"""The RAI API's client of the LLM API (`LLM_API_URL`): generate a reply (whole or streamed), read its health.

Each waitress thread keeps one keep-alive connection to the LLM API (a new TCP connection and
urllib's opener chain per chat turn cost more than the mock's whole reply). Every failure becomes
`LlmUnavailable(reason)` naming the URL and what went wrong (refused, timed out, an error the LLM
API reported), which chat turns into 503 `llm_unavailable`: never the troubleshooting log's
"I encountered an internal error".
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

from services import sse

GENERATE_TIMEOUT_S = 60.0
HEALTH_TIMEOUT_S = 1.0
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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "it did not answer in time"
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


class LlmClient:
    """Talks to one LLM API base URL (http or https, optionally with a path prefix)."""

    def __init__(self, base_url: str, timeout: float = GENERATE_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        parts = urlsplit(self.base_url)
        self._https, self._host, self._port = parts.scheme == "https", parts.hostname or "", parts.port
        self._prefix = parts.path
        self._local = threading.local()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """(this thread's connection, whether it was used before)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        self._local.conn = kind(self._host, self._port, timeout=self.timeout)
        return self._local.conn, False

    def _close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _exchange(self, method: str, path: str, data: bytes | None, timeout: float) -> tuple[int, bytes]:
        response = self._open(method, path, data, timeout)
        try:
            return response.status, response.read()
        except BaseException:  # whatever stopped it mid-read (even an interrupt): never reuse the connection
            self._close()
            raise

    def _open(self, method: str, path: str, data: bytes | None, timeout: float,
              accept: str = "application/json") -> http.client.HTTPResponse:
        """Send a request on this thread's connection and return the response, its body unread."""
        for _ in range(2):
            conn, reused = self._connection()
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, self._prefix + path, body=data,
                             headers={"Content-Type": "application/json", "Accept": accept})
                return conn.getresponse()
            except _STALE:
                self._close()
                if not reused:
                    raise
            except BaseException:  # whatever stopped it mid-exchange (even an interrupt): never reuse the connection
                self._close()
                raise
        raise ConnectionResetError("the connection was reset twice")  # not reached: the 2nd try is fresh

    def _call(self, method: str, path: str, data: bytes | None, timeout: float,
              any_status: bool = False) -> dict[str, Any]:
        where = f"the LLM API at {self.base_url}"
        try:
            status, payload = self._exchange(method, path, data, timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise LlmUnavailable(f"{where} is unreachable: {_reason(exc)}") from None
        if status != 200 and not any_status:
            raise LlmUnavailable(f"{where} answered {status}: {_error_message(payload)}")
        try:
            answer = json.loads(payload)
        except ValueError:
            raise LlmUnavailable(f"{where} answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise LlmUnavailable(f"{where} answered an unexpected document")
        return answer

    def generate(self, system: str, messages: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
        """(reply text, usage) for `messages` under the `system` prompt."""
        body = self._call("POST", "/api/generate", request_body(system, messages, stream=False), self.timeout)
        if not isinstance(body.get("text"), str):
            raise LlmUnavailable(f"the LLM API at {self.base_url} answered without a reply text")
        usage = body.get("usage")
        return body["text"], usage if isinstance(usage, dict) else {}

    def stream(self, system: str, messages: list[dict[str, str]]) -> "Upstream":
        """The LLM API's reply as a stream, opened: a failure to get one (unreachable, an error
        status) raises LlmUnavailable here, before anything was streamed."""
        where = f"the LLM API at {self.base_url}"
        data = request_body(system, messages, stream=True)
        try:
            response = self._open("POST", "/api/generate", data, self.timeout, accept=sse.MIMETYPE)
        except (OSError, http.client.HTTPException) as exc:
            raise LlmUnavailable(f"{where} is unreachable: {_reason(exc)}") from None
        if response.status != 200 or response.getheader("Content-Type", "").split(";")[0] != sse.MIMETYPE:
            payload = self._read_quietly(response)
            status = f"answered {response.status}" if response.status != 200 else "answered without a stream"
            raise LlmUnavailable(f"{where} {status}: {_error_message(payload)}")
        return Upstream(response, where, self._close)

    def _read_quietly(self, response: http.client.HTTPResponse) -> bytes:
        try:
            return response.read()
        except (OSError, http.client.HTTPException):
            self._close()
            return b""

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
    drop_connection: Any = field(repr=False)
    done: dict[str, Any] | None = None

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
            raise LlmUnavailable(f"{self.where} failed mid-reply: {_reason(exc)}") from None
        if self.done is None:
            raise LlmUnavailable(f"{self.where} ended its reply without a done event")

    def close(self) -> None:
        """Give the connection back when the stream was read to its end, else drop it."""
        if self.done is None or not self.response.isclosed():
            self.drop_connection()

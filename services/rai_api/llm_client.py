"""The RAI API's client of the LLM API (`LLM_API_URL`): generate a reply, read its health.

Every failure becomes `LlmUnavailable(reason)` naming the URL and what went wrong (refused,
timed out, an error the LLM API reported), which chat turns into 503 `llm_unavailable`: never the
troubleshooting log's "I encountered an internal error".
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

GENERATE_TIMEOUT_S = 60.0
HEALTH_TIMEOUT_S = 1.0


class LlmUnavailable(Exception):
    """The LLM API could not give a reply; the message says why."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "it did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is it running? `raictl up llm_api`)"
    return getattr(exc, "strerror", None) or str(exc)


def _error_message(payload: bytes) -> str:
    try:
        body = json.loads(payload)
    except ValueError:
        return payload[:200].decode(errors="replace")
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body)[:200]


class LlmClient:
    """Talks to one LLM API base URL."""

    def __init__(self, base_url: str, timeout: float = GENERATE_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any, timeout: float) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        where = f"the LLM API at {self.base_url}"
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise LlmUnavailable(f"{where} answered {exc.code}: {_error_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise LlmUnavailable(f"{where} is unreachable: {_reason(exc)}") from None
        try:
            return json.loads(payload)
        except ValueError:
            raise LlmUnavailable(f"{where} answered something that is not JSON") from None

    def generate(self, system: str, messages: list[dict[str, str]]) -> str:
        """The reply text for `messages` under the `system` prompt."""
        body = self._call("POST", "/api/generate", {"messages": messages, "system": system}, self.timeout)
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise LlmUnavailable(f"the LLM API at {self.base_url} answered without a reply text")
        return text

    def health(self) -> dict[str, Any]:
        """The LLM API's health document (short timeout); LlmUnavailable when it cannot be read."""
        body = self._call("GET", "/api/health", None, HEALTH_TIMEOUT_S)
        if not isinstance(body, dict):
            raise LlmUnavailable(f"the LLM API at {self.base_url} answered an unexpected health document")
        return body

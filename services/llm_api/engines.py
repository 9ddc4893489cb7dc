"""The engines behind /api/generate: Gemini through google-genai, an honest mock, and their choice.

Every engine answers in two ways (the `Engine` protocol): `generate(prompt)` gives the whole `Reply`;
`stream(prompt)` yields the reply's text in `Delta` pieces as they arrive, then exactly one `Reply`
(the whole text and the usage) last. Either raises `EngineError`; a stream may raise it before its
first piece (the API then answers with the JSON status) or after some (an `error` event).

`choose_engine` applies DESIGN.md: `auto` means Gemini when its key is set, else an OpenAI-compatible
server (services/llm_api/openai_engine.py) when OPENAI_BASE_URL or OPENAI_API_KEY is set, else the mock
(and says why); `gemini` without a key, or `openai` with neither, gives an engine that refuses every
request with the reason. google-genai is imported only inside `GeminiEngine` (openai only inside
`OpenAIEngine`), so a mock-only service never loads them.

The mock's reply is a contract other services test against (see `MockEngine.generate`).
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

from raishared.settings import mask_secret
from services.http_json import JsonError
from services.llm_api import MOCK_LABEL

MOCK_MODEL = "mock"
MOCK_PIECES = 4
FACTS_HEADER = "Remembered facts about the user:"
RECALL_HEADER = "Relevant earlier conversations:"
NO_KEY = "no GEMINI_API_KEY (or GOOGLE_API_KEY) set"
NO_ENGINE = "no GEMINI_API_KEY (or GOOGLE_API_KEY), OPENAI_BASE_URL or OPENAI_API_KEY set"
DEFAULT_TIMEOUT_S = 60.0  # LLM_TIMEOUT_S's default


@dataclass(frozen=True)
class Message:
    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Prompt:
    """A validated /api/generate request."""

    messages: tuple[Message, ...]
    system: str | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class Reply:
    text: str
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed reply's text, as the engine received it."""

    text: str


class EngineError(JsonError):
    """A failure the LLM API reports as `{"error": code, "message": message}` with HTTP `status`."""


class Engine(Protocol):
    name: str
    model: str

    def generate(self, prompt: Prompt) -> Reply: ...

    def stream(self, prompt: Prompt) -> Iterator[Delta | Reply]:
        """Delta pieces as they arrive, then the Reply (whole text and usage), last."""
        ...


def stream_whole(reply: Reply, pieces: int = 1) -> Iterator[Delta | Reply]:
    """A finished reply streamed as `pieces` Deltas of about equal length, then the Reply: the stream
    of an engine whose text is there all at once."""
    size = -(-len(reply.text) // max(1, pieces))  # ceiling division: at most `pieces` pieces
    for start in range(0, len(reply.text), max(1, size)):
        yield Delta(reply.text[start:start + size])
    yield reply


class MockEngine:
    """Deterministic, labelled as mock; its reply shows what it received."""

    name = "mock"
    model = MOCK_MODEL

    def generate(self, prompt: Prompt) -> Reply:
        """`[mock] reply to "<last user message[:80]>" (messages: N, earlier: N-1, system prompt: yes|no,
        remembered facts: K, recalled: R)`; K and R count the `- ` lines under FACTS_HEADER and
        RECALL_HEADER in the system prompt, each block ending at the next blank line."""
        count = len(prompt.messages)
        system = prompt.system or ""
        text = (f'{MOCK_LABEL} reply to "{prompt.messages[-1].content[:80]}" (messages: {count}, '
                f'earlier: {count - 1}, system prompt: {"yes" if system else "no"}, '
                f"remembered facts: {count_block_items(system, FACTS_HEADER)}, "
                f"recalled: {count_block_items(system, RECALL_HEADER)})")
        input_chars = len(system) + sum(len(m.content) for m in prompt.messages)
        return Reply(text, {"input_chars": input_chars, "output_chars": len(text)})

    def stream(self, prompt: Prompt) -> Iterator[Delta | Reply]:
        """The same reply as `generate`, in MOCK_PIECES pieces (so clients see a real stream)."""
        return stream_whole(self.generate(prompt), MOCK_PIECES)


def count_block_items(system: str, header: str) -> int:
    """The number of `- ` lines in the block that follows a line exactly `header`, up to a blank line."""
    lines = system.splitlines()
    try:
        start = [line.rstrip() for line in lines].index(header) + 1
    except ValueError:
        return 0
    count = 0
    for line in lines[start:]:
        if not line.strip():
            break
        count += line.startswith("- ")
    return count


class UnavailableEngine:
    """An engine asked for that cannot run (no key, no server): every request gets 503 with the reason."""

    def __init__(self, model: str, reason: str, name: str = "gemini") -> None:
        self.model, self.reason, self.name = model, reason, name

    def generate(self, prompt: Prompt) -> Reply:
        raise EngineError(503, "engine_unavailable", self.reason)

    def stream(self, prompt: Prompt) -> Iterator[Delta | Reply]:
        raise EngineError(503, "engine_unavailable", self.reason)


class GeminiEngine:
    """Gemini on the google-genai SDK: explicit API version, timeout, no SDK retries, clear errors."""

    name = "gemini"
    API_VERSION = "v1beta"  # set explicitly: the SDK's default version changed between releases

    def __init__(self, api_key: str, model: str, base_url: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, connections: int = 100) -> None:
        from google import genai
        from google.genai import types

        self.model, self.timeout_s = model, timeout_s
        self.base_url = base_url or "https://generativelanguage.googleapis.com"
        self._key, self._types = api_key, types
        self._timeouts, self._transport = _transport_errors()
        options = types.HttpOptions(base_url=base_url or None, api_version=self.API_VERSION,
                                    timeout=int(timeout_s * 1000),  # milliseconds in this SDK
                                    retry_options=types.HttpRetryOptions(attempts=1),
                                    client_args={"limits": _pool_limits(connections)})
        # The caller (the RAI API, the user) decides about retrying; a hidden backoff would only
        # hold a waitress thread for a minute behind an outage.
        self._client = genai.Client(vertexai=False, api_key=api_key, http_options=options)

    def generate(self, prompt: Prompt) -> Reply:
        with self._upstream_errors():
            response = self._client.models.generate_content(
                model=self.model, contents=self._contents(prompt), config=self._config(prompt))
        text = response.text
        if not text:
            raise self._empty(response)
        return Reply(text, self._usage(response.usage_metadata))

    def stream(self, prompt: Prompt) -> Iterator[Delta | Reply]:
        """google-genai's generate_content_stream (`streamGenerateContent?alt=sse`), piece by piece;
        closing this generator closes the upstream request."""
        pieces: list[str] = []
        last: Any = None
        with self._upstream_errors():
            chunks: Any = self._client.models.generate_content_stream(
                model=self.model, contents=self._contents(prompt), config=self._config(prompt))
            try:
                for last in chunks:
                    if text := last.text:
                        pieces.append(text)
                        yield Delta(text)
            finally:
                chunks.close()  # a generator: closing it closes the SDK's HTTP response
        if not pieces:
            raise self._empty(last)
        yield Reply("".join(pieces), self._usage(last.usage_metadata))

    @contextmanager
    def _upstream_errors(self) -> Iterator[None]:
        """Gemini's and the network's failures, as EngineErrors a person can act on."""
        from google.genai import errors

        try:
            yield
        except errors.APIError as exc:
            raise self._api_error(exc) from None
        except self._timeouts:
            raise EngineError(502, "upstream_timeout",
                              f"Gemini did not answer within {self.timeout_s:g}s ({self.base_url})") from None
        except self._transport as exc:
            raise EngineError(502, "upstream_unavailable",
                              self._scrub(f"cannot reach Gemini at {self.base_url}: {exc}")) from None

    def _contents(self, prompt: Prompt) -> list[Any]:
        types = self._types
        return [types.Content(role="model" if m.role == "assistant" else "user",
                              parts=[types.Part(text=m.content)]) for m in prompt.messages]

    def _config(self, prompt: Prompt) -> Any:
        return self._types.GenerateContentConfig(
            system_instruction=prompt.system or None, temperature=prompt.temperature,
            automatic_function_calling=self._types.AutomaticFunctionCallingConfig(disable=True))

    @staticmethod
    def _empty(response: Any) -> EngineError:
        candidates = (response.candidates if response is not None else None) or []
        reason = candidates[0].finish_reason if candidates else None
        blocked = getattr(getattr(response, "prompt_feedback", None), "block_reason", None)
        return EngineError(502, "upstream_empty", f"Gemini returned no text (finish reason: {reason}, "
                                                  f"prompt block reason: {blocked})")

    @staticmethod
    def _usage(meta: Any) -> dict[str, int]:
        return {"input_tokens": getattr(meta, "prompt_token_count", None) or 0,
                "output_tokens": getattr(meta, "candidates_token_count", None) or 0,
                "total_tokens": getattr(meta, "total_token_count", None) or 0}

    def _api_error(self, exc: Any) -> EngineError:
        """Map an HTTP error from Gemini to a reason a person can act on."""
        detail = self._scrub(str(exc.message or exc.status or "")[:300])
        code = exc.code or 0
        if code in (401, 403) or "API_KEY_INVALID" in str(exc.details):
            return EngineError(502, "upstream_auth", f"Gemini rejected the API key (HTTP {code}): {detail}; "
                                                     "check GEMINI_API_KEY")
        if code == 429:
            return EngineError(502, "upstream_rate_limited",
                               f"Gemini rate limit or quota exceeded (HTTP 429): {detail}")
        if code == 404:
            return EngineError(502, "upstream_not_found", f"Gemini does not know the model {self.model!r} "
                                                          f"(HTTP 404): {detail}; check GEMINI_MODEL")
        if code >= 500:
            return EngineError(502, "upstream_unavailable", f"Gemini is unavailable (HTTP {code}): {detail}")
        return EngineError(502, "upstream_rejected", f"Gemini rejected the request (HTTP {code}): {detail}")

    def _scrub(self, text: str) -> str:
        return scrub(text, self._key)


def scrub(text: str, key: str | None) -> str:
    """Upstream text never carries the key out, even if a proxy echoed it."""
    return text.replace(key, mask_secret(key)) if key else text


def _pool_limits(connections: int) -> Any:
    """The SDK's HTTP connection pool sized for `connections` calls at once (the HTTP library's default,
    100, would queue the rest of LLM_API_MAX_WAITING inside the SDK); its Limits class (httpx or httpx2)."""
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.Limits(max_connections=connections, max_keepalive_connections=min(connections, 64))
    raise ImportError("google-genai needs httpx or httpx2")


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeout, other transport) exception classes of whichever HTTP library the SDK uses.

    google-genai 1.x uses httpx, 3.x its fork httpx2; the classes are distinct, so catch both.
    """
    timeouts: list[type[BaseException]] = []
    transport: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    return tuple(timeouts), tuple(transport)


def choose_engine(settings: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[Engine, str | None]:
    """The engine for these settings and, when the mock stands in for a real one, why."""
    engine = settings.resolved_engine
    if engine == "mock":
        reason = None if settings.llm_engine == "mock" else f"{NO_ENGINE}: LLM_ENGINE=auto uses the mock"
        return MockEngine(), reason
    if engine == "openai":
        return _openai_engine(settings, timeout_s), None
    if not settings.gemini_api_key:
        return UnavailableEngine(settings.gemini_model,
                                 f"LLM_ENGINE=gemini but {NO_KEY}; set a key or LLM_ENGINE=auto"), None
    return GeminiEngine(settings.gemini_api_key, settings.gemini_model, settings.gemini_base_url,
                        timeout_s, connections=settings.llm_api_max_waiting), None


def _openai_engine(settings: Any, timeout_s: float) -> Engine:
    if not (settings.openai_base_url or settings.openai_api_key):
        return UnavailableEngine(settings.openai_model, "LLM_ENGINE=openai but neither OPENAI_BASE_URL (a local "
                                 "server, e.g. http://127.0.0.1:11434/v1 for Ollama) nor OPENAI_API_KEY is set",
                                 name="openai")
    from services.llm_api.openai_engine import OpenAIEngine

    return OpenAIEngine(settings.openai_base_url, settings.openai_api_key, settings.openai_model, timeout_s)

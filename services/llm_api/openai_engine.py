"""The `openai` engine: any OpenAI-compatible chat server through the official `openai` SDK.

Ollama (`http://127.0.0.1:11434/v1`), llama.cpp's server, vLLM, LM Studio and OpenAI itself all
answer `POST {base}/chat/completions`. The SDK is imported only when this engine is built, so a
mock-only or Gemini service never loads it. Like the Gemini engine: an explicit timeout, no SDK
retries (the caller decides), and every failure mapped to a reason a person can act on, the key
never in it. A local server needs no key: the SDK insists on one, so a placeholder goes out
(`PLACEHOLDER_KEY`), which such servers ignore.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from services.llm_api.engines import DEFAULT_TIMEOUT_S, Delta, EngineError, Prompt, Reply, scrub

OPENAI_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "no-key"  # what goes out as the bearer token when OPENAI_API_KEY is not set
DETAIL_CHARS = 300


class OpenAIEngine:
    """Chat completions on an OpenAI-compatible server: the same contract as the Gemini engine."""

    name = "openai"

    def __init__(self, base_url: str | None, api_key: str | None, model: str,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        import openai

        self.model, self.timeout_s = model, timeout_s
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self._key, self._openai = api_key, openai
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key or PLACEHOLDER_KEY,
                                     timeout=timeout_s, max_retries=0)

    @property
    def where(self) -> str:
        return f"the OpenAI-compatible server at {self.base_url}"

    def generate(self, prompt: Prompt) -> Reply:
        with self._mapped_errors():
            completion = self._client.chat.completions.create(**self._request(prompt))
        choice = completion.choices[0] if completion.choices else None
        text = choice.message.content if choice and choice.message else None
        if not text:
            reason = choice.finish_reason if choice else "no choices"
            raise EngineError(502, "upstream_empty", f"{self.where} returned no text (finish reason: {reason})")
        return Reply(text, usage_of(completion.usage))

    def stream(self, prompt: Prompt) -> Iterator[Delta | Reply]:
        """The reply's text pieces as they arrive, then the whole Reply with the usage the server sends
        last (`stream_options.include_usage`); closing this generator closes the upstream request."""
        pieces: list[str] = []
        usage: dict[str, int] = {}
        with self._mapped_errors():
            events = self._client.chat.completions.create(
                **self._request(prompt), stream=True, stream_options={"include_usage": True})
            try:
                for chunk in events:
                    usage = usage_of(chunk.usage) or usage
                    for text in (c.delta.content for c in chunk.choices or () if c.delta and c.delta.content):
                        pieces.append(text)
                        yield Delta(text)
            finally:
                events.close()
        if not pieces:
            raise EngineError(502, "upstream_empty", f"{self.where} streamed no text")
        yield Reply("".join(pieces), usage)

    def list_models(self) -> list[str]:
        """The model ids `GET {base}/models` lists (doctor's llm.openai); EngineError when it fails."""
        with self._mapped_errors():
            return [model.id for model in self._client.models.list()]

    def _request(self, prompt: Prompt) -> dict[str, Any]:
        messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
        messages += [{"role": m.role, "content": m.content} for m in prompt.messages]
        request: dict[str, Any] = {"model": self.model, "messages": messages}
        if prompt.temperature is not None:
            request["temperature"] = prompt.temperature
        return request

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """The SDK's exceptions become EngineErrors (in a generator's body too)."""
        try:
            yield
        except self._openai.OpenAIError as exc:
            mapped = self.error_for(exc)
            if mapped is None:
                raise
            raise mapped from None

    def error_for(self, exc: Exception) -> EngineError | None:
        """The EngineError an exception of the SDK stands for; None for anything else."""
        openai = self._openai
        if isinstance(exc, openai.APITimeoutError):
            return EngineError(502, "upstream_timeout",
                               f"{self.where} did not answer within {self.timeout_s:g}s")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return EngineError(502, "upstream_unavailable", self._scrub(f"cannot reach {self.where}: {cause}"))
        if isinstance(exc, openai.APIStatusError):
            detail = self._scrub(error_detail(exc.body, exc.message))
            return self._status_error(exc.status_code, detail, exc.code == "model_not_found")
        if isinstance(exc, openai.APIError):  # e.g. an error event in the middle of a stream
            detail = self._scrub(error_detail(exc.body, exc.message))
            return EngineError(502, "upstream_unavailable", f"{self.where} broke off the reply: {detail}")
        return None

    def _status_error(self, code: int, detail: str, model_not_found: bool) -> EngineError:
        """Map an HTTP error from the server to a reason a person can act on. A 404 is about the model when
        the server says so (OpenAI's code `model_not_found`, or the model's name in the message, as Ollama
        and vLLM write it); otherwise the base URL is wrong."""
        if code in (401, 403):
            key = "check OPENAI_API_KEY" if self._key else "it wants a key: set OPENAI_API_KEY"
            return EngineError(502, "upstream_auth", f"{self.where} rejected the API key (HTTP {code}): {detail}; {key}")
        if code == 429:
            return EngineError(502, "upstream_rate_limited",
                               f"{self.where} is rate limiting or out of quota (HTTP 429): {detail}")
        if code == 404 and (model_not_found or self.model.lower() in detail.lower()):
            return EngineError(502, "upstream_not_found", f"{self.where} does not know the model {self.model!r} "
                                                          f"(HTTP 404): {detail}; check OPENAI_MODEL")
        if code == 404:
            return EngineError(502, "upstream_not_found", f"{self.where} has no such endpoint (HTTP 404): "
                                                          f"{detail}; check OPENAI_BASE_URL (it usually ends in /v1)")
        if code >= 500:
            return EngineError(502, "upstream_unavailable", f"{self.where} is unavailable (HTTP {code}): {detail}")
        return EngineError(502, "upstream_rejected", f"{self.where} rejected the request (HTTP {code}): {detail}")

    def _scrub(self, text: str) -> str:
        return scrub(text, self._key)


def error_detail(body: Any, fallback: str) -> str:
    """The message of an OpenAI-style error body (`{"message": ...}` or a plain text), shortened."""
    if isinstance(body, dict) and body.get("message"):
        text = str(body["message"])
    elif isinstance(body, str) and body.strip():
        text = body.strip()
    else:
        text = fallback
    return text[:DETAIL_CHARS]


def usage_of(usage: Any) -> dict[str, int]:
    """The LLM API's usage keys from an OpenAI usage object (absent counts are 0)."""
    if usage is None:
        return {}
    return {"input_tokens": getattr(usage, "prompt_tokens", None) or 0,
            "output_tokens": getattr(usage, "completion_tokens", None) or 0,
            "total_tokens": getattr(usage, "total_tokens", None) or 0}

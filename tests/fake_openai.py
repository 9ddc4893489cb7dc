"""A small, real HTTP server that speaks enough of the OpenAI API for the real `openai` client.

What Ollama, llama.cpp's server, vLLM and LM Studio answer (and OpenAI itself): `GET /v1/models`, and
`POST /v1/chat/completions` as one `chat.completion` document or, with `"stream": true`, server-sent
`chat.completion.chunk` events ending in `data: [DONE]` (the last chunk carries `usage` when
`stream_options.include_usage` asks for it). Failures are OpenAI-style `{"error": {"message", "type",
"code"}}` documents. It listens on one address (`127.0.0.1` by default, `::1` when asked) on a free port.

Usage (a context manager; every behaviour lasts until the next one is set)::

    with FakeOpenAI() as fake:
        fake.base_url                  # "http://127.0.0.1:PORT/v1", for OPENAI_BASE_URL
        fake.reply("hello")            # answer every chat with this text (the default), streamed in chunks of
        fake.chunks = 4                # ... this many characters, with
        fake.chunk_delay = 0.0         # ... this pause between chunks
        fake.fail_after = 2            # a streamed reply breaks off after 2 pieces with an error event
        fake.echo()                    # answer with a JSON summary of what arrived (see `summary`)
        fake.fail(429)                 # answer with an OpenAI-style error (401, 404, 429, 500, 503, ...)
        fake.hang(5.0)                 # wait this long before answering; released at once on exit
        fake.require_key("k")          # a wrong/missing bearer key gets 401 invalid_api_key
        fake.models = ["llama3.2"]     # what /v1/models lists; a chat naming another model gets 404
        fake.requests                  # every request received, oldest first (ReceivedRequest)
        fake.wait_for_requests(2)      # block until that many requests arrived

The fake never echoes a key back, so a key found in a service's response or log came from the service.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

DEFAULT_REPLY = "Hello from the fake OpenAI server."
DEFAULT_MODELS = ("gpt-4o-mini", "llama3.2")
ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
               404: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    @property
    def stream(self) -> bool:
        return bool((self.body or {}).get("stream"))

    @property
    def model(self) -> str | None:
        return (self.body or {}).get("model")

    def summary(self) -> dict[str, Any]:
        """What `echo()` answers with, as a JSON text: the chat exactly as it arrived."""
        body = self.body or {}
        return {"model": body.get("model"), "temperature": body.get("temperature"), "stream": self.stream,
                "messages": [[m.get("role"), m.get("content")] for m in body.get("messages", [])]}


@dataclass
class _Behaviour:
    kind: str = "reply"  # reply | echo | fail | hang
    text: str = DEFAULT_REPLY
    status: int = 200
    message: str = ""
    delay: float = 0.0


@dataclass
class FakeOpenAI:
    """The fake server; use it as a context manager (see the module docstring)."""

    host: str = "127.0.0.1"
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    chunks: int = 4
    chunk_delay: float = 0.0
    fail_after: int | None = None
    requests: list[ReceivedRequest] = field(default_factory=list, init=False)
    _behaviour: _Behaviour = field(default_factory=_Behaviour, init=False, repr=False)
    _required_key: str | None = field(default=None, init=False, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._released = threading.Event()  # set on stop: hanging handlers answer at once

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> "FakeOpenAI":
        server_class = _V6Server if ":" in self.host else ThreadingHTTPServer
        self._server = server_class((self.host, 0), type("Handler", (_Handler,), {"fake": self}))
        self._server.daemon_threads, self._server.block_on_close = True, False
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    # --- behaviours ------------------------------------------------------------------------------
    def reply(self, text: str = DEFAULT_REPLY) -> None:
        self._set(_Behaviour("reply", text=text))

    def echo(self) -> None:
        self._set(_Behaviour("echo"))

    def fail(self, status: int, message: str | None = None) -> None:
        self._set(_Behaviour("fail", status=status, message=message or f"fake OpenAI error {status}"))

    def hang(self, seconds: float) -> None:
        self._set(_Behaviour("hang", delay=seconds))

    def require_key(self, key: str | None) -> None:
        with self._lock:
            self._required_key = key

    def _set(self, behaviour: _Behaviour) -> None:
        with self._lock:
            self._behaviour = behaviour

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"fake OpenAI got {len(self.requests)} requests, expected {count}")
            return list(self.requests)

    # --- answers (called from the handler threads) -----------------------------------------------
    def _record(self, request: ReceivedRequest) -> tuple[_Behaviour, str | None]:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
            return self._behaviour, self._required_key

    def _refusal(self, request: ReceivedRequest, behaviour: _Behaviour, key: str | None) -> tuple | None:
        """(status, error document) when the request is refused before any answer, else None."""
        if key is not None and request.api_key != key:
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if behaviour.kind == "hang" and self._released.wait(behaviour.delay):
            return _error(503, "fake OpenAI is shutting down")
        if behaviour.kind == "fail":
            return _error(behaviour.status, behaviour.message)
        return None

    def answer_models(self, request: ReceivedRequest) -> tuple[int, dict]:
        behaviour, key = self._record(request)
        refused = self._refusal(request, behaviour, key)
        return refused or (200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]})

    def answer_chat(self, request: ReceivedRequest) -> tuple[int, dict | Iterator[bytes]]:
        behaviour, key = self._record(request)
        refused = self._refusal(request, behaviour, key)
        if refused:
            return refused
        if request.model not in self.models:
            return _error(404, f"The model `{request.model}` does not exist or you do not have access to it.",
                          "model_not_found")
        text = json.dumps(request.summary()) if behaviour.kind == "echo" else behaviour.text
        usage = _usage(request, text)
        if request.stream:
            include = bool(((request.body or {}).get("stream_options") or {}).get("include_usage"))
            return 200, self._chunks(request.model, text, usage if include else None)
        return 200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": request.model,
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}], "usage": usage}

    def _chunks(self, model: str, text: str, usage: dict | None) -> Iterator[bytes]:
        pieces = [text[i:i + self.chunks] for i in range(0, len(text), self.chunks)] or [""]
        for index, piece in enumerate(pieces):
            if index and self.chunk_delay and self._released.wait(self.chunk_delay):
                return
            if index == self.fail_after:  # how OpenAI-compatible servers report a failure mid-stream
                yield _event({"error": {"message": "the model crashed mid-reply", "type": "server_error"}})
                return
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            yield _event(_chunk(model, [{"index": 0, "delta": delta, "finish_reason": None}]))
        yield _event(_chunk(model, [{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if usage is not None:
            yield _event({**_chunk(model, []), "usage": usage})
        yield b"data: [DONE]\n\n"


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _chunk(model: str, choices: list) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": choices}


def _event(document: dict) -> bytes:
    return f"data: {json.dumps(document)}\n\n".encode()


def _usage(request: ReceivedRequest, text: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", ""))) for m in (request.body or {}).get("messages", [])) // 4 + 1
    completion = len(text) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _error(status: int, message: str, code: str | None = None) -> tuple[int, dict]:
    return status, {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error"),
                              "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        request = self._request(None)
        if request.path == "/v1/models":
            self._send(*self.fake.answer_models(request))
        else:
            self.fake._record(request)
            self._send(*_error(404, f"no such route: GET {request.path}"))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length)) if length else None
        except ValueError:
            body = None
        request = self._request(body)
        if request.path == "/v1/chat/completions":
            self._send(*self.fake.answer_chat(request))
        else:
            self.fake._record(request)
            self._send(*_error(404, f"no such route: POST {request.path}"))

    def _request(self, body: Any) -> ReceivedRequest:
        headers = {k.lower(): v for k, v in self.headers.items()}
        return ReceivedRequest(self.command, self.path.split("?", 1)[0], headers, body)

    def _send(self, status: int, payload: dict | Iterator[bytes]) -> None:
        try:
            if isinstance(payload, dict):
                self._send_json(status, payload)
            else:
                self._send_events(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing left to answer

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_events(self, events: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for data in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass


def main() -> None:
    """`python -m tests.fake_openai`: serve in a process of its own (benches), answering every chat with
    the text given on the command line, until stdin closes; prints the base URL first."""
    import sys

    with FakeOpenAI() as fake:
        if len(sys.argv) > 1:
            fake.reply(sys.argv[1])
        print(fake.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()

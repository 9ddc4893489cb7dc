"""A small, real HTTP server that speaks enough of the Gemini REST API for the real google-genai client.

It listens on 127.0.0.1 on a free port (a ThreadingHTTPServer in a background thread) and answers
`POST /{api_version}/models/{model}:generateContent` the way generativelanguage.googleapis.com does:
a candidates/usageMetadata document on success, a Google-style `{"error": {"code", "message",
"status"}}` document on failure. `:streamGenerateContent?alt=sse` answers the same reply as
server-sent events (`data: {candidates, usageMetadata}` per chunk, chunked transfer encoding), the
text cut into `chunks` pieces with `delay` seconds before each; a failure set to come after N chunks
arrives as a `data: {"error": ...}` event, as Google sends one mid-stream.
Point the service at it with `GEMINI_BASE_URL=fake.base_url`.

Usage (a context manager; every behaviour lasts until the next one is set)::

    with FakeGemini() as fake:
        fake.base_url                  # "http://127.0.0.1:PORT", for GEMINI_BASE_URL
        fake.reply("hello")            # answer every request with this text (the default behaviour)
        fake.reply("a b c", chunks=3, delay=0.1)   # streamed in 3 pieces, 0.1 s before each (a plain
                                       # generateContent then waits the sum before answering)
        fake.reply("a b c", chunks=3, fail_after=1, status=503)  # 1 chunk, then a 503 error event
        fake.echo()                    # answer with a JSON summary of what arrived (see `summary`)
        fake.fail(429)                 # answer with a Google-style error (401, 403, 429, 500, 503, ...)
        fake.hang(5.0)                 # wait this long before answering; released at once on exit
        fake.stop_hanging()            # release the requests hanging now (they answer 503), as on exit
        fake.require_key("k")          # a wrong/missing x-goog-api-key gets 400 API_KEY_INVALID, as the real API does
        fake.requests                  # every request received, oldest first (ReceivedRequest)
        fake.streamed                  # per finished stream, how many chunks were written before it
                                       # ended (fewer than planned: the client went away)
        fake.requests[-1].api_key      # the x-goog-api-key header that arrived
        fake.wait_for_requests(2)      # block until that many requests arrived (hangs are counted on arrival)
        fake.reset()                   # back to reply(), no key required, requests forgotten (module-scoped use)

`ReceivedRequest` keeps the method, path, api_version, model, headers and parsed JSON body, and
offers `system`, `contents` ([(role, text)]) and `temperature` read back from the Gemini wire format.
The fake never echoes the API key back in any response, so a key found in a service's response or log
came from the service itself.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = re.compile(r"^/(?P<version>[^/]+)/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}
DEFAULT_REPLY = "Hello from the fake Gemini."


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    api_version: str | None
    model: str | None
    headers: dict[str, str]
    body: Any
    streamed: bool = False  # streamGenerateContent?alt=sse

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")

    @property
    def system(self) -> str | None:
        instruction = (self.body or {}).get("systemInstruction")
        return _join_parts(instruction) if instruction else None

    @property
    def contents(self) -> list[tuple[str, str]]:
        return [(c.get("role", ""), _join_parts(c)) for c in (self.body or {}).get("contents", [])]

    @property
    def temperature(self) -> float | None:
        return ((self.body or {}).get("generationConfig") or {}).get("temperature")

    def summary(self) -> dict[str, Any]:
        """What `echo()` answers with, as a JSON text: the prompt exactly as it arrived."""
        return {"model": self.model, "api_version": self.api_version, "system": self.system,
                "contents": [list(c) for c in self.contents], "temperature": self.temperature}


def _join_parts(content: dict) -> str:
    return "".join(part.get("text", "") for part in content.get("parts", []))


@dataclass
class _Behaviour:
    kind: str = "reply"  # reply | echo | fail | hang
    text: str = DEFAULT_REPLY
    status: int = 200
    message: str = ""
    delay: float = 0.0  # hang: before answering; reply: before each chunk
    chunks: int = 1
    fail_after: int | None = None  # reply: this many chunks, then the error `status`


@dataclass
class FakeGemini:
    """The fake server; use it as a context manager (see the module docstring)."""

    host: str = "127.0.0.1"
    requests: list[ReceivedRequest] = field(default_factory=list, init=False)
    streamed: list[int] = field(default_factory=list, init=False)
    _behaviour: _Behaviour = field(default_factory=_Behaviour, init=False, repr=False)
    _required_key: str | None = field(default=None, init=False, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified on every request
        self._released = threading.Event()  # set on stop: hanging handlers answer at once

    # --- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> "FakeGemini":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> "FakeGemini":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server((self.host, 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),  # quick shutdown
                                        name="fake-gemini", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # let any hanging handler finish at once
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
        return f"http://{self.host}:{self.port}"

    # --- behaviours ------------------------------------------------------------------------------
    def reply(self, text: str = DEFAULT_REPLY, chunks: int = 1, delay: float = 0.0,
              fail_after: int | None = None, status: int = 500, message: str | None = None) -> None:
        self._set(_Behaviour("reply", text=text, chunks=max(1, chunks), delay=delay, fail_after=fail_after,
                             status=status, message=message or f"fake Gemini error {status} mid-stream"))

    def echo(self) -> None:
        self._set(_Behaviour("echo"))

    def fail(self, status: int, message: str | None = None) -> None:
        self._set(_Behaviour("fail", status=status, message=message or f"fake Gemini error {status}"))

    def hang(self, seconds: float) -> None:
        self._set(_Behaviour("hang", delay=seconds))

    def stop_hanging(self) -> None:
        """Release every request hanging now (each answers 503); later hangs wait again."""
        with self._lock:
            released, self._released = self._released, threading.Event()
        released.set()

    def require_key(self, key: str | None) -> None:
        with self._lock:
            self._required_key = key

    def reset(self) -> None:
        with self._lock:
            self._behaviour, self._required_key = _Behaviour(), None
            self.requests.clear()
            self.streamed.clear()

    def _set(self, behaviour: _Behaviour) -> None:
        with self._lock:
            self._behaviour = behaviour

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"fake Gemini got {len(self.requests)} requests, expected {count}")
            return list(self.requests)

    # --- request handling (called from the handler threads) --------------------------------------
    def _record(self, request: ReceivedRequest) -> tuple[_Behaviour, str | None]:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
            return self._behaviour, self._required_key

    def _answer(self, request: ReceivedRequest) -> tuple[int, dict | list[dict], _Behaviour]:
        """(status, the document or, for a stream, its chunks, the behaviour that made them)."""
        behaviour, required_key = self._record(request)
        if request.model is None:
            return (*_error(404, f"no such method: {request.method} {request.path}"), behaviour)
        if required_key is not None and request.api_key != required_key:
            return (*_invalid_key(), behaviour)
        if behaviour.kind == "hang" and self._released.wait(behaviour.delay):
            return (*_error(503, "fake Gemini is shutting down"), behaviour)
        if behaviour.kind == "fail":
            return (*_error(behaviour.status, behaviour.message), behaviour)
        text = json.dumps(request.summary()) if behaviour.kind == "echo" else behaviour.text
        if request.streamed:
            return 200, _chunks(text, request, behaviour), behaviour
        if behaviour.kind == "reply" and self._released.wait(behaviour.delay * behaviour.chunks):
            return (*_error(503, "fake Gemini is shutting down"), behaviour)
        return 200, _success(text, request), behaviour

    def _pause(self, seconds: float) -> bool:
        """Wait before a chunk; False when the fake is stopping (the stream then ends)."""
        return not (seconds and self._released.wait(seconds))


def _success(text: str, request: ReceivedRequest) -> dict:
    prompt_tokens = sum(len(t) for _, t in request.contents) // 4 + 1
    output_tokens = len(text) // 4 + 1
    return {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
                          "totalTokenCount": prompt_tokens + output_tokens},
        "modelVersion": request.model,
    }


def _chunks(text: str, request: ReceivedRequest, behaviour: _Behaviour) -> list[dict]:
    """The stream's documents: `text` in `chunks` pieces, each with the usage so far (as Google
    sends it), the last with finishReason STOP; or, with fail_after, that many then the error."""
    size = -(-len(text) // behaviour.chunks) or 1
    pieces = [text[i:i + size] for i in range(0, len(text), size)] or [""]
    documents = []
    for index, piece in enumerate(pieces):
        document = _success(text[:size * index + len(piece)], request)
        document["candidates"][0]["content"]["parts"][0]["text"] = piece
        if index < len(pieces) - 1:
            del document["candidates"][0]["finishReason"]
        documents.append(document)
    if behaviour.fail_after is not None:
        return documents[:behaviour.fail_after] + [_error(behaviour.status, behaviour.message)[1]]
    return documents


def _error(status: int, message: str) -> tuple[int, dict]:
    return status, {"error": {"code": status, "message": message,
                              "status": STATUS_NAMES.get(status, "UNKNOWN")}}


def _invalid_key() -> tuple[int, dict]:
    """What the real API answers for a wrong key: HTTP 400 with reason API_KEY_INVALID."""
    status, body = _error(400, "API key not valid. Please pass a valid API key.")
    body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                 "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
    return status, body


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # socketserver's 5 resets connections when a bench opens 128 at once


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGemini
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        match = PATH.match(path)
        streamed = bool(match) and match["method"] == "streamGenerateContent" and "alt=sse" in self.path
        request = ReceivedRequest("POST", path, match and match["version"], match and match["model"],
                                  {k.lower(): v for k, v in self.headers.items()}, body, streamed)
        status, payload, behaviour = self.fake._answer(request)
        if isinstance(payload, list):
            self._stream(payload, behaviour.delay)
        else:
            self._send(status, payload)

    def do_GET(self) -> None:  # noqa: N802
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(ReceivedRequest("GET", self.path, None, None, headers, None))
        self._send(*_error(404, f"no such method: GET {self.path}"))

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing left to answer

    def _stream(self, documents: list[dict], delay: float) -> None:
        """Each document as an SSE event in its own HTTP chunk, `delay` seconds before each."""
        written = 0
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for document in documents:
                if not self.fake._pause(delay if "error" not in document else 0):
                    break
                event = f"data: {json.dumps(document)}\r\n\r\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                written += 1
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-stream
        with self.fake._lock:
            self.fake.streamed.append(written)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass

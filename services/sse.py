"""Server-sent events as both APIs speak them, and as their clients read them.

A stream is a sequence of `event: NAME` / `data: JSON` blocks, each ended by a blank line. A request
asks for one with `"stream": true` in its JSON body or `Accept: text/event-stream`; an error found
before the first byte is still answered as JSON with its status, after it as an `error` event that
ends the stream. Standard library only: raictl's chat client reads streams with `read_events` too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

MIMETYPE = "text/event-stream"
# No proxy or browser may buffer or cache a reply that is meant to arrive piece by piece.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class Event:
    name: str
    data: Any


def encode(name: str, data: Any) -> bytes:
    """One event, ready to write (JSON on one line, so one `data:` line)."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def wants_stream(body: dict[str, Any], accept: str | None) -> bool:
    """Whether a request asked for a stream: `"stream": true`, or an Accept naming text/event-stream
    (and `"stream": false` wins over the header)."""
    if "stream" in body:
        return body["stream"] is True
    return MIMETYPE in (accept or "")


def read_events(stream: BinaryIO | Iterator[bytes]) -> Iterator[Event]:
    """The events of a stream as they arrive: from a response's `read1` (one read per network chunk,
    not per line: a quarter of the RAI API's CPU per streamed reply went into line-by-line reading),
    or from any iterator of byte pieces. A block without `event:` is a `message`, as in the SSE standard."""
    read1 = getattr(stream, "read1", None)
    pieces = iter(lambda: read1(65536), b"") if read1 else stream
    buffer = b""
    for piece in pieces:
        buffer = (buffer + piece).replace(b"\r\n", b"\n")
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            event = _event(block)
            if event is not None:
                yield event
    if buffer.strip():
        event = _event(buffer)
        if event is not None:
            yield event


def _event(block: bytes) -> Event | None:
    name, data = "message", []
    for line in block.decode("utf-8").split("\n"):
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return Event(name, _parse("\n".join(data))) if data else None


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text

"""The streamed chat turn: `POST /api/chat` with `"stream": true` answers `start`, `delta`…, then
`done` or `error` (server-sent events, DESIGN.md "Streaming").

Everything that can fail with a JSON status happens before the first byte: the account, the session,
the context, and opening the LLM API's stream (it answers once Gemini's first piece is there). Then
the user's message is stored with a reply row that says `[interrupted: the reply did not complete]`,
`start` names the session, each piece is passed on as it arrives, and the reply row is rewritten once:

- complete: the whole reply, then `done` (so a client gone at `done` still finds it stored);
- the LLM API fails mid-reply: what was produced, then `[interrupted: the LLM API failed: …]`, and an
  `error` event;
- the client goes away (the disconnect rule): the LLM call is stopped at once (no more quota spent
  on a reply nobody reads) and what was produced is stored, then `[interrupted: the client disconnected]`.

So every stored user message has a reply row saying what became of it, even if the process dies.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

from flask import Response
from sqlalchemy.exc import SQLAlchemyError

from services import sse
from services.rai_api import conversation, memory
from services.rai_api.db import Database
from services.rai_api.errors import ApiError
from services.rai_api.llm_client import LlmClient, LlmUnavailable, Upstream

log = logging.getLogger(__name__)

Events = Iterator[tuple[str, dict[str, Any]]]
UNFINISHED = "the reply did not complete"
DISCONNECTED = "the client disconnected"


def interrupted(pieces: list[str], why: str) -> str:
    """The stored text of a reply that did not complete: what was produced, then why it stopped."""
    text = "".join(pieces).rstrip()
    return f"{text}\n\n[interrupted: {why}]" if text else f"[interrupted: {why}]"


def chat_stream(db: Database, llm: LlmClient, user_id: int, message: str, session_id: str | None,
                system: str | None = None) -> Events:
    """The turn's events; raises ApiError (or a database error) before the first one when it cannot begin.
    `system`: the system prompt a new session keeps."""
    command = memory.parse_command(message)
    if command is not None:
        reply, session_id, reply_id = conversation.command_turn(db, user_id, message, session_id, command, system)
        return iter([("start", {"session_id": session_id}), ("delta", {"text": reply}),
                     ("done", {"session_id": session_id, "message_id": reply_id, "engine": None, "usage": {}})])
    prompt, messages = conversation.prompt_for(db, user_id, message, session_id, system)
    try:
        upstream = llm.stream(prompt, messages)
    except LlmUnavailable as exc:
        raise ApiError(503, "llm_unavailable", str(exc)) from None
    try:
        with db.transaction(write=True) as connection:
            session_id, reply_id = conversation.open_turn(connection, user_id, session_id, message,
                                                          interrupted([], UNFINISHED), system)
    except BaseException:
        upstream.close()
        raise
    return _relay(db, upstream, session_id, reply_id)


def _relay(db: Database, upstream: Upstream, session_id: str, reply_id: int) -> Events:
    pieces: list[str] = []
    settled = False  # the reply row was rewritten (or tried): the client leaving now changes nothing
    try:
        yield "start", {"session_id": session_id}
        try:
            for text in upstream:
                pieces.append(text)
                yield "delta", {"text": text}
        except LlmUnavailable as exc:
            settled = True
            _store(db, reply_id, interrupted(pieces, f"the LLM API failed: {exc}"))
            yield "error", {"error": "llm_unavailable", "message": str(exc)}
            return
        settled = True
        done = upstream.done or {}
        if not _store(db, reply_id, "".join(pieces), done.get("usage")):
            yield "error", {"error": "database_unavailable", "message": "the reply could not be stored"}
            return
        yield "done", {"session_id": session_id, "message_id": reply_id, "engine": done.get("engine"),
                       "usage": done.get("usage") or {}}
    finally:
        upstream.close()  # the client gone mid-reply: this stops the LLM API's stream, and Gemini's
        if not settled:
            _store(db, reply_id, interrupted(pieces, DISCONNECTED))


def _store(db: Database, reply_id: int, text: str, usage: dict[str, Any] | None = None) -> bool:
    """Rewrite the reply row (and its tokens); False (logged) when the database fails (the row keeps saying interrupted)."""
    try:
        with db.transaction(write=True) as connection:
            conversation.set_reply(connection, reply_id, text, usage if isinstance(usage, dict) else None)
    except SQLAlchemyError as exc:
        log.error("storing streamed reply %s failed: %s", reply_id, str(getattr(exc, "orig", None) or exc)[:300])
        return False
    return True


def response(events: Events) -> Response:
    """The events as a text/event-stream response; closing it (the client gone) closes `events`."""
    return Response(_encoded(events), mimetype=sse.MIMETYPE, headers=sse.HEADERS)


def _encoded(events: Events) -> Iterator[bytes]:
    try:
        for name, data in events:
            yield sse.encode(name, data)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()

"""Chat sessions and their messages: the chat turn, memory commands, and the sessions endpoints' reads.

A chat turn reads what the prompt needs in one short transaction, calls the LLM API with no
transaction open (a slow model must not hold a lock or a pooled connection), then stores the
user's message and the reply together in a second one: a failed call stores nothing.
This is the hot path, so it runs prebuilt Core statements on a Connection (`Database.transaction`)
and handles only plain rows: measured, a quarter of the cost of the same queries through a Session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from services.rai_api import auth, memory, rules
from services.rai_api.db import Database
from services.rai_api.errors import ApiError
from services.rai_api.llm_client import LlmClient, LlmUnavailable
from services.rai_api.models import Base, ChatSession, Message, User

TITLE_CHARS = 60

_users, _sessions, _messages = (Base.metadata.tables[m.__tablename__] for m in (User, ChatSession, Message))
_SID: sa.BindParameter[str] = sa.bindparam("sid")
_UID: sa.BindParameter[int] = sa.bindparam("uid")
OWN_SESSION = sa.select(_sessions.c.id).where(_sessions.c.id == _SID, _sessions.c.user_id == _UID)
# The account check and the session's ownership in one round trip (a turn in a session needs both).
SESSION_PROMPT = sa.select(_sessions.c.system_prompt).where(_sessions.c.id == _SID).scalar_subquery()
USER_AND_SESSION = (sa.select(_users.c.is_active, _users.c.remembered_facts,
                              sa.exists(OWN_SESSION).label("owns_session"), SESSION_PROMPT.label("system_prompt"))
                    .where(_users.c.id == _UID))
RECENT = (sa.select(_messages.c.role, _messages.c.content).where(_messages.c.session_id == _SID)
          .order_by(_messages.c.id.desc()).limit(memory.RECENT_LIMIT))
FACTS = sa.select(_users.c.remembered_facts).where(_users.c.id == _UID)
SET_FACTS = (sa.update(_users).where(_users.c.id == _UID)
             .values(remembered_facts=sa.bindparam("facts", type_=sa.JSON(none_as_null=True))))
TOUCH_SESSION = (sa.update(_sessions).where(_sessions.c.id == _SID, _sessions.c.user_id == _UID)
                 .values(updated_at=sa.func.now()))
DELETE_SESSION = sa.delete(_sessions).where(_sessions.c.id == _SID, _sessions.c.user_id == _UID)
MESSAGE_COUNTS = (sa.select(_messages.c.session_id, sa.func.count(_messages.c.id).label("n"))
                  .group_by(_messages.c.session_id).subquery())
SESSION_INFO = sa.select(_sessions.c.system_prompt).where(_sessions.c.id == _SID, _sessions.c.user_id == _UID)
LIST_SESSIONS = (sa.select(_sessions.c.id, _sessions.c.title, _sessions.c.created_at, _sessions.c.updated_at,
                           sa.func.coalesce(MESSAGE_COUNTS.c.n, 0).label("n"))
                 .outerjoin(MESSAGE_COUNTS, MESSAGE_COUNTS.c.session_id == _sessions.c.id)
                 .where(_sessions.c.user_id == _UID)
                 .order_by(_sessions.c.updated_at.desc(), _sessions.c.created_at.desc(), _sessions.c.id))
SESSION_MESSAGES = (sa.select(_messages.c.id, _messages.c.role, _messages.c.content, _messages.c.created_at,
                              _messages.c.input_tokens, _messages.c.output_tokens)
                    .where(_messages.c.session_id == _SID).order_by(_messages.c.id))


# Both databases seek this id range on the primary key or (session_id, id): at most RECALL_WINDOW rows.
_NEWEST = _messages.alias("newest")
_RECALL_FLOOR = sa.select(sa.func.max(_NEWEST.c.id)).scalar_subquery() - memory.RECALL_WINDOW


@lru_cache(maxsize=2 * memory.RECALL_QUERY_WORDS)
def earlier_query(words: int, other_than_session: bool) -> sa.Select:
    """Newest messages of the user's sessions, among the newest RECALL_WINDOW, containing one of
    `words` keywords (:w0, :w1, …)."""
    query = (sa.select(_messages.c.role, _messages.c.content)
             .join(_sessions, _sessions.c.id == _messages.c.session_id)
             .where(_sessions.c.user_id == _UID, _messages.c.id > _RECALL_FLOOR,
                    sa.or_(*(_messages.c.content.ilike(sa.bindparam(f"w{i}")) for i in range(words))))
             .order_by(_messages.c.id.desc()).limit(memory.RECALL_SCAN_LIMIT))
    return query.where(_sessions.c.id != _SID) if other_than_session else query


@dataclass(frozen=True)
class Context:
    """What one chat turn needs from the database, as plain values."""

    facts: list[str]
    recent: list[tuple[str, str]]
    earlier: list[tuple[str, str]]
    session_prompt: str | None = None


_no_session = rules.no_session

def own_session(connection: sa.Connection, user_id: int, session_id: str) -> None:
    """404 unless `session_id` is one of the user's sessions (unknown and another user's alike)."""
    if connection.execute(OWN_SESSION, {"sid": session_id, "uid": user_id}).first() is None:
        raise _no_session(session_id)


def _as_facts(value: Any) -> list[str]:
    return [str(f) for f in value] if isinstance(value, list) else []


def _earlier(connection: sa.Connection, user_id: int, session_id: str | None, message: str) -> list[tuple[str, str]]:
    words = memory.search_words(message)
    if not words:
        return []
    params = {"uid": user_id, "sid": session_id, **{f"w{i}": f"%{w}%" for i, w in enumerate(words)}}
    rows = connection.execute(earlier_query(len(words), session_id is not None), params).all()  # one fetchall
    return [(r.role, r.content) for r in rows]


def _read_context(connection: sa.Connection, user_id: int, session_id: str | None, message: str,
                  new_prompt: str | None = None) -> Context:
    recent: list[tuple[str, str]] = []
    if session_id is None:
        user = auth.load_active_user(connection, user_id)
        prompt = new_prompt
    else:
        user = auth.active(connection.execute(USER_AND_SESSION, {"uid": user_id, "sid": session_id}).first())
        if not user.owns_session:
            raise _no_session(session_id)
        recent = [(r.role, r.content) for r in reversed(connection.execute(RECENT, {"sid": session_id}).all())]
        prompt = user.system_prompt
    facts = _as_facts(user.remembered_facts)
    return Context(facts, recent, _earlier(connection, user_id, session_id, message), prompt)


def _session_for_turn(connection: sa.Connection, user_id: int, session_id: str | None, message: str,
                      system: str | None = None) -> str:
    """The turn's session: a new one (titled after its first message, keeping `system`) or the given one, touched."""
    if session_id is None:
        session_id = str(uuid.uuid4())
        connection.execute(sa.insert(_sessions), {"id": session_id, "user_id": user_id, "system_prompt": system,
                                                  "title": memory.one_line(message)[:TITLE_CHARS]})
    elif connection.execute(TOUCH_SESSION, {"sid": session_id, "uid": user_id}).rowcount == 0:
        raise _no_session(session_id)  # deleted while the LLM API was answering
    return session_id


def tokens(usage: dict[str, Any] | None) -> dict[str, int | None]:
    """The reply row's token columns from the LLM API's usage (None where the engine reports none, like the mock)."""
    usage = usage or {}
    return {key: usage[key] if isinstance(usage.get(key), int) and not isinstance(usage[key], bool) else None
            for key in ("input_tokens", "output_tokens")}


def _store_turn(connection: sa.Connection, user_id: int, session_id: str | None, message: str, reply: str,
                usage: dict[str, Any] | None = None, system: str | None = None) -> str:
    """Store the user's message and the reply (with its tokens); a new session is created for the first turn."""
    session_id = _session_for_turn(connection, user_id, session_id, message, system)
    connection.execute(sa.insert(_messages), [
        {"session_id": session_id, "role": "user", "content": message, "input_tokens": None, "output_tokens": None},
        {"session_id": session_id, "role": "assistant", "content": rules.storable_reply(reply),
         **tokens(usage)}])
    return session_id


def open_turn(connection: sa.Connection, user_id: int, session_id: str | None, message: str,
              reply: str, system: str | None = None) -> tuple[str, int]:
    """Like _store_turn, and also the id of the reply's row (one more round trip: the streamed turn
    rewrites that row when the reply is complete)."""
    session_id = _session_for_turn(connection, user_id, session_id, message, system)
    connection.execute(sa.insert(_messages), {"session_id": session_id, "role": "user", "content": message})
    inserted = connection.execute(sa.insert(_messages), {"session_id": session_id, "role": "assistant",
                                                         "content": reply})
    key = inserted.inserted_primary_key
    assert key is not None  # a single-row insert always has one
    return session_id, key[0]


def set_reply(connection: sa.Connection, message_id: int, reply: str, usage: dict[str, Any] | None = None) -> None:
    """Overwrite a reply row and its tokens (gone with its session if that was deleted meanwhile: nothing to do)."""
    connection.execute(sa.update(_messages).where(_messages.c.id == message_id)
                       .values(content=rules.storable_reply(reply), **tokens(usage)))


def _run_command(connection: sa.Connection, user_id: int, command: memory.Command) -> str:
    """Carry out a memory command on users.remembered_facts; the reply says what was done."""
    query = FACTS if command.kind == "list" else FACTS.with_for_update()  # no lost update on MySQL
    facts = _as_facts(connection.execute(query, {"uid": user_id}).scalar())
    if command.kind == "list":
        return memory.describe_facts(facts)
    if command.kind == "remember":
        facts, new = memory.remember(facts, command.argument)
        reply = f"OK, I will remember that {command.argument}." if new else "I already remember that."
    else:
        facts, removed = memory.forget(facts, command.argument)
        reply = (f"OK, I forgot: {'; '.join(removed)}." if removed
                 else f"I had nothing remembered matching {command.argument!r}.")
    connection.execute(SET_FACTS, {"uid": user_id, "facts": facts or None})
    return reply


def command_turn(db: Database, user_id: int, message: str, session_id: str | None,
                 command: memory.Command, system: str | None = None) -> tuple[str, str, int]:
    """(reply, session id, reply's message id) of a memory command, answered from the database."""
    with db.transaction(write=True) as connection:
        auth.load_active_user(connection, user_id)
        if session_id is not None:
            own_session(connection, user_id, session_id)
        reply = _run_command(connection, user_id, command)
        return (reply, *open_turn(connection, user_id, session_id, message, reply, system))


def prompt_for(db: Database, user_id: int, message: str, session_id: str | None,
               system: str | None = None) -> tuple[str, list[dict[str, str]]]:
    """(system prompt, messages) for the LLM API: the account and session checked, the context read.
    `system`: the prompt a new session is to keep; an existing session's own is read from the database."""
    with db.transaction() as connection:
        context = _read_context(connection, user_id, session_id, message, system)
    return memory.build_prompt(message, context.recent, context.facts, memory.recall(message, context.earlier),
                               context.session_prompt)


def chat_turn(db: Database, llm: LlmClient, user_id: int, message: str, session_id: str | None,
              system: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """(reply, session id, usage) for one chat message; memory commands are answered from the database.
    `system`: the system prompt a new session keeps (sent on each of its turns)."""
    command = memory.parse_command(message)
    if command is not None:
        reply, session_id, _ = command_turn(db, user_id, message, session_id, command, system)
        return reply, session_id, {}
    prompt, messages = prompt_for(db, user_id, message, session_id, system)
    try:
        reply, usage = llm.generate(prompt, messages)
    except LlmUnavailable as exc:
        raise ApiError(503, "llm_unavailable", str(exc)) from None
    with db.transaction(write=True) as connection:
        return reply, _store_turn(connection, user_id, session_id, message, reply, usage, system), usage


def list_sessions(db: Database, user_id: int) -> list[dict[str, Any]]:
    """The user's sessions, most recently used first, with their message counts."""
    with db.transaction() as connection:
        rows = connection.execute(LIST_SESSIONS, {"uid": user_id}).all()
    return [{"id": r.id, "title": r.title, "created_at": _iso(r.created_at),
             "updated_at": _iso(r.updated_at), "message_count": r.n} for r in rows]


def session_messages(db: Database, user_id: int, session_id: str) -> dict[str, Any]:
    """One of the user's sessions: its system prompt, its messages oldest first (an assistant message
    with the tokens it cost, None where the engine reported none) and the session's token totals."""
    with db.transaction() as connection:
        found = connection.execute(SESSION_INFO, {"sid": session_id, "uid": user_id}).first()
        if found is None:
            raise _no_session(session_id)
        rows = connection.execute(SESSION_MESSAGES, {"sid": session_id}).all()
    messages = [{"id": r.id, "role": r.role, "content": r.content, "created_at": _iso(r.created_at),
                 **({"usage": {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens}}
                    if r.role == "assistant" else {})} for r in rows]
    totals = {key: sum(getattr(r, key) or 0 for r in rows) for key in ("input_tokens", "output_tokens")}
    return {"system_prompt": found.system_prompt, "messages": messages, "usage": totals}


def delete_session(db: Database, user_id: int, session_id: str) -> None:
    """Delete one of the user's sessions; its messages go with it (ON DELETE CASCADE)."""
    with db.transaction(write=True) as connection:
        if connection.execute(DELETE_SESSION, {"sid": session_id, "uid": user_id}).rowcount == 0:
            raise _no_session(session_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None

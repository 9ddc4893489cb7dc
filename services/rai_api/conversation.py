"""Chat sessions and their messages: the chat turn, memory commands, and the sessions endpoints' reads.

A chat turn reads what the prompt needs in one short database session, calls the LLM API with no
database session open (a slow model must not hold a transaction or a pooled connection), then
stores the user's message and the reply together in a second one: a failed call stores nothing.
Only plain values leave a session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.rai_api import memory
from services.rai_api.db import Database
from services.rai_api.errors import ApiError
from services.rai_api.llm_client import LlmClient, LlmUnavailable
from services.rai_api.models import ChatSession, Message, User

TITLE_CHARS = 60


@dataclass(frozen=True)
class Context:
    """What one chat turn needs from the database, as plain values."""

    session_id: str | None
    facts: list[str]
    recent: list[tuple[str, str]]
    earlier: list[tuple[str, str]]


def own_session(session: Session, user_id: int, session_id: str) -> ChatSession:
    """The user's session `session_id`; 404 for an unknown one and for another user's alike."""
    found = session.execute(sa.select(ChatSession).where(ChatSession.id == session_id,
                                                         ChatSession.user_id == user_id)).scalar_one_or_none()
    if found is None:
        raise ApiError(404, "session_not_found", f"no session {session_id!r} among this user's sessions")
    return found


def _facts(session: Session, user_id: int, for_update: bool = False) -> list[str]:
    query = sa.select(User.remembered_facts).where(User.id == user_id)
    facts = session.execute(query.with_for_update() if for_update else query).scalar_one_or_none()
    return [str(f) for f in facts] if isinstance(facts, list) else []


def _read_context(session: Session, user_id: int, session_id: str | None) -> Context:
    recent: list[tuple[str, str]] = []
    if session_id is not None:
        own_session(session, user_id, session_id)
        rows = session.execute(sa.select(Message.role, Message.content).where(Message.session_id == session_id)
                               .order_by(Message.id.desc()).limit(memory.RECENT_LIMIT)).all()
        recent = [(r.role, r.content) for r in reversed(rows)]
    earlier_query = (sa.select(Message.role, Message.content).join(ChatSession)
                     .where(ChatSession.user_id == user_id).order_by(Message.id.desc())
                     .limit(memory.RECALL_SCAN_LIMIT))
    if session_id is not None:
        earlier_query = earlier_query.where(ChatSession.id != session_id)
    earlier = [(r.role, r.content) for r in session.execute(earlier_query)]
    return Context(session_id, _facts(session, user_id), recent, earlier)


def _store_turn(session: Session, user_id: int, session_id: str | None, message: str, reply: str) -> str:
    """Store the user's message and the reply; a new session is created for the first turn."""
    if session_id is None:
        session_id = str(uuid.uuid4())
        session.add(ChatSession(id=session_id, user_id=user_id, title=memory.one_line(message)[:TITLE_CHARS]))
    else:  # it may have been deleted while the LLM API was answering
        own_session(session, user_id, session_id).updated_at = sa.func.now()
    session.add_all([Message(session_id=session_id, role="user", content=message),
                     Message(session_id=session_id, role="assistant", content=reply)])
    return session_id


def _run_command(session: Session, user_id: int, command: memory.Command) -> str:
    """Carry out a memory command on users.remembered_facts; the reply says what was done."""
    facts = _facts(session, user_id, for_update=command.kind != "list")
    if command.kind == "list":
        return memory.describe_facts(facts)
    if command.kind == "remember":
        facts, new = memory.remember(facts, command.argument)
        reply = f"OK, I will remember that {command.argument}." if new else "I already remember that."
    else:
        facts, removed = memory.forget(facts, command.argument)
        reply = (f"OK, I forgot: {'; '.join(removed)}." if removed
                 else f"I had nothing remembered matching {command.argument!r}.")
    session.execute(sa.update(User).where(User.id == user_id).values(remembered_facts=facts or None))
    return reply


def chat_turn(db: Database, llm: LlmClient, user_id: int, message: str, session_id: str | None) -> tuple[str, str]:
    """(reply, session id) for one chat message; memory commands are answered from the database."""
    command = memory.parse_command(message)
    if command is not None:
        with db.session_scope() as session:
            if session_id is not None:
                own_session(session, user_id, session_id)
            reply = _run_command(session, user_id, command)
            return reply, _store_turn(session, user_id, session_id, message, reply)
    with db.session_scope() as session:
        context = _read_context(session, user_id, session_id)
    system, messages = memory.build_prompt(message, context.recent, context.facts,
                                           memory.recall(message, context.earlier))
    try:
        reply = llm.generate(system, messages)
    except LlmUnavailable as exc:
        raise ApiError(503, "llm_unavailable", str(exc)) from None
    with db.session_scope() as session:
        return reply, _store_turn(session, user_id, session_id, message, reply)


def list_sessions(db: Database, user_id: int) -> list[dict[str, Any]]:
    """The user's sessions, most recently used first, with their message counts."""
    counts = (sa.select(Message.session_id, sa.func.count(Message.id).label("n"))
              .group_by(Message.session_id).subquery())
    query = (sa.select(ChatSession.id, ChatSession.title, ChatSession.created_at, ChatSession.updated_at,
                       sa.func.coalesce(counts.c.n, 0).label("n"))
             .outerjoin(counts, counts.c.session_id == ChatSession.id)
             .where(ChatSession.user_id == user_id)
             .order_by(ChatSession.updated_at.desc(), ChatSession.created_at.desc(), ChatSession.id))
    with db.session_scope() as session:
        rows = session.execute(query).all()
    return [{"id": r.id, "title": r.title, "created_at": _iso(r.created_at),
             "updated_at": _iso(r.updated_at), "message_count": r.n} for r in rows]


def session_messages(db: Database, user_id: int, session_id: str) -> list[dict[str, Any]]:
    """The messages of one of the user's sessions, oldest first."""
    with db.session_scope() as session:
        own_session(session, user_id, session_id)
        rows = session.execute(sa.select(Message.id, Message.role, Message.content, Message.created_at)
                               .where(Message.session_id == session_id).order_by(Message.id)).all()
    return [{"id": r.id, "role": r.role, "content": r.content, "created_at": _iso(r.created_at)} for r in rows]


def delete_session(db: Database, user_id: int, session_id: str) -> None:
    """Delete one of the user's sessions with its messages (ON DELETE CASCADE, and the ORM's too)."""
    with db.session_scope() as session:
        session.delete(own_session(session, user_id, session_id))


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None

"""End-to-end: a throw-away user registers, logs in, chats and is deleted again (log steps 6-11, 25, 30).

The RAI API has no endpoint to delete a user (by design: accounts are not deleted over HTTP), so
doctor deletes the chat session through the API and then the `doctor-…` user row directly in the
database of raictl's settings. If that row is not there, the RAI API uses another database than
raictl's settings say: a finding of its own. A failing step names the endpoint, status and body.
"""

from __future__ import annotations

import secrets
from typing import Any

from raictl.doctor import observe
from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, check
from raictl.errors import RaictlError

E2E_TIMEOUT = 15.0
STEP_TIMEOUT = 10.0
USER_PREFIX = "doctor-"


class StepFailed(Exception):
    """One HTTP step answered wrong: endpoint, status and body."""


def _call(ctx: CheckContext, base: str, method: str, path: str, body: Any = None, token: str | None = None,
          expect: int = 200) -> Any:
    from raictl.chat.client import request

    ctx.doing(f"{method} {path}")
    try:
        reply = request(method, base + path, body, token=token, timeout=STEP_TIMEOUT)
    except OSError as exc:
        raise StepFailed(f"{method} {path}: no answer ({exc.strerror or exc})") from None
    if reply.status != expect:
        text = reply.body if isinstance(reply.body, str) else _short(reply.body)
        raise StepFailed(f"{method} {path} answered HTTP {reply.status}: {text}")
    return reply.body


def _short(body: Any) -> str:
    import json

    return json.dumps(body)[:300]


def delete_user(url: str, username: str) -> int:
    """Delete the throw-away user (and anything left of it) from the database; rows deleted."""
    import sqlalchemy as sa

    from raishared.database import parse_url
    from services.rai_api.models import ChatSession, Message, User

    engine = sa.create_engine(parse_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            ids = sa.select(User.id).where(User.username == username).scalar_subquery()
            sessions = sa.select(ChatSession.id).where(ChatSession.user_id == ids).scalar_subquery()
            conn.execute(sa.delete(Message).where(Message.session_id.in_(sessions)))
            conn.execute(sa.delete(ChatSession).where(ChatSession.user_id == ids))
            return conn.execute(sa.delete(User).where(User.username == username)).rowcount
    except sa.exc.SQLAlchemyError as exc:
        raise RaictlError(f"could not delete the throw-away user {username}: {str(getattr(exc, 'orig', exc))[:200]}",
                          hint=f"delete it by hand: DELETE FROM users WHERE username = '{username}'") from None
    finally:
        engine.dispose()


def _conversation(ctx: CheckContext, base: str, username: str, password: str) -> str:
    """Register, log in, chat, delete the session; the reply's first words."""
    creds = {"username": username, "password": password}
    _call(ctx, base, "POST", "/api/auth/register", creds, expect=201)
    token = _call(ctx, base, "POST", "/api/auth/login", creds)["access_token"]
    answer = _call(ctx, base, "POST", "/api/chat", {"message": "Hello from raictl doctor"}, token=token)
    _call(ctx, base, "DELETE", f"/api/sessions/{answer['session_id']}", token=token)
    return str(answer.get("response", ""))[:60]


@check("e2e.chat", "Register, log in, chat, clean up", timeout=E2E_TIMEOUT)
def chat(ctx: CheckContext) -> Result:
    h = observe.health(ctx, "rai_api")
    if not h.service_matches:
        return ctx.skip("the RAI API is not answering (see rai_api.health)")
    if h.doc.get("llm_status") == "unreachable":  # chat would only wait for the LLM API's timeout
        return ctx.skip("the RAI API cannot reach the LLM API, so chat cannot work (see wiring.live)")
    base = h.base
    if base is None:
        return ctx.skip("the RAI API is not answering (see rai_api.health)")
    username, password = f"{USER_PREFIX}{secrets.token_hex(6)}", secrets.token_urlsafe(18)
    failure = None
    try:
        reply = _conversation(ctx, base, username, password)
    except StepFailed as exc:
        failure = str(exc)
    ctx.doing(f"deleting the throw-away user {username}")
    removed = delete_user(ctx.settings.database_url, username)
    if failure:
        return ctx.fail(failure, hint="`raictl logs rai_api` (and logs.rai_api below) shows why")
    if not removed:
        return ctx.fail(f"chat works, but user {username} is not in raictl's database: the RAI API uses another "
                        "database than RAI_DATABASE_URL says", hint="`raictl restart rai_api`; it leaves that user behind")
    return ctx.ok(f"registered, logged in, chatted ({reply!r}…) and cleaned up as {username}")

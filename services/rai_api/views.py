"""The RAI API's endpoints (DESIGN.md "RAI API"): thin handlers over auth, conversation and health."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from services.rai_api import auth, conversation, rules, streaming, throttle
from services.rai_api.db import Database
from services.rai_api.errors import ApiError
from services.rai_api.models import User

api = Blueprint("rai_api", __name__, url_prefix="/api")


def _db() -> Database:
    return current_app.extensions["rai_db"]


@api.get("/health")
def health() -> ResponseReturnValue:
    payload, status = current_app.extensions["rai_health"].rendered()
    return current_app.response_class(payload, status, mimetype="application/json")


@api.post("/auth/register")
def register() -> ResponseReturnValue:
    creds = rules.credentials(rules.json_body())
    taken = ApiError(409, "username_taken", f"the username {creds.username!r} is already taken")
    with _db().session_scope() as session:  # a taken name costs a read, not a hash
        if session.execute(sa.select(User.id).where(User.username == creds.username)).first():
            raise taken
    with current_app.extensions["rai_hash_gate"].slot():  # slow on purpose: not while holding a connection
        password_hash = auth.hash_password(creds.password)
    try:
        with _db().session_scope() as session:
            session.add(User(username=creds.username, password_hash=password_hash))
    except IntegrityError:  # unique username: two registrations raced
        raise taken from None
    return jsonify(status="success", username=creds.username), 201


@api.post("/auth/login")
def login() -> ResponseReturnValue:
    creds = rules.credentials(rules.json_body(), check_rules=False)
    attempt = throttle.Attempt(creds.username, request.remote_addr or "unknown")
    limits = current_app.extensions["rai_login_throttle"]
    limits.check(attempt)  # a quick 429 before anything costly
    row = None
    if rules.is_valid_username(creds.username):  # else no account can have it (MariaDB ignores trailing spaces)
        with _db().session_scope() as session:
            row = session.execute(sa.select(User.id, User.password_hash, User.is_active)
                                  .where(User.username == creds.username)).first()
    with current_app.extensions["rai_hash_gate"].slot():
        limits.admit(attempt)  # counted as failed until it succeeds: at most the limit of hashes per window
        matches = auth.password_matches(row.password_hash if row else None, creds.password)
    if row is None or not matches or not row.is_active:
        raise ApiError(401, "invalid_credentials", auth.LOGIN_FAILED)
    limits.succeeded(attempt)
    token = auth.issue_token(current_app.config["SECRET_KEY"], row.id, row.password_hash)
    return jsonify(access_token=token, token_type="bearer", expires_in=auth.TOKEN_TTL_S)


@api.post("/chat")
def chat() -> ResponseReturnValue:
    user_id = auth.request_user_id()
    body = rules.json_body()
    message, session_id = rules.chat_request(body)
    system = rules.session_system(body, session_id)
    if session_id is None and system is None:
        system = current_app.config["RAI_SYSTEM_PROMPT"]  # the settings' default, kept with the new session
    if rules.wants_stream(body):
        return streaming.response(streaming.chat_stream(_db(), current_app.extensions["rai_llm"], user_id,
                                                        message, session_id, system))
    reply, session_id, usage = conversation.chat_turn(_db(), current_app.extensions["rai_llm"], user_id,
                                                      message, session_id, system)
    return jsonify(response=reply, session_id=session_id, status="success", usage=usage)


@api.get("/sessions")
def sessions() -> ResponseReturnValue:
    user = auth.current_user()
    return jsonify(sessions=conversation.list_sessions(_db(), user.id))


@api.get("/sessions/<session_id>/messages")
def session_messages(session_id: str) -> ResponseReturnValue:
    user = auth.current_user()
    rules.checked_session_id(session_id)
    return jsonify(session_id=session_id, **conversation.session_messages(_db(), user.id, session_id))


@api.delete("/sessions/<session_id>")
def delete_session(session_id: str) -> ResponseReturnValue:
    user = auth.current_user()
    rules.checked_session_id(session_id)
    conversation.delete_session(_db(), user.id, session_id)
    return jsonify(status="deleted", session_id=session_id)

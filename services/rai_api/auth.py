"""Accounts and bearer tokens: hashed passwords (werkzeug.security) and signed, expiring tokens.

A token is an itsdangerous URLSafeTimedSerializer signature of the user's id and a fingerprint of
their password hash (`pwf`), keyed by `Settings.secret_key()`; it expires after TOKEN_TTL_S. Every
request re-reads the user inside one database session and keeps only plain values (`CurrentUser`),
never the ORM object. The fingerprint binds the token to the account as it was: a deleted user's id
given to a new account, or a changed password, ends it (issue 13: the id alone let a stale token read
the next account's sessions).

Password hashing is slow on purpose and runs on a few slots (`HashGate`): a login flood beyond them is
answered `503 busy` at once instead of every request thread hashing while chats wait.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterator

import sqlalchemy as sa
from flask import current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from services.rai_api.errors import ApiError
from services.rai_api.models import User

TOKEN_TTL_S = 24 * 3600
# A user id is a positive integer that fits a signed 64-bit column (SQLite's INTEGER; MySQL's INT is smaller).
USER_ID_LIMIT = 2**63
INVALID_TOKEN = "the access token is not valid: log in again"
TOKEN_SALT = "rai-api.access-token"
LOGIN_FAILED = "invalid username or password"
_USERS = User.__table__
ACTIVE_USER = (sa.select(_USERS.c.id, _USERS.c.username, _USERS.c.is_active, _USERS.c.remembered_facts,
                         _USERS.c.password_hash)
               .where(_USERS.c.id == sa.bindparam("uid")))
# Compared against when the user does not exist, so both failures cost the same time.
_DUMMY_HASH = generate_password_hash("not a real password")


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str


class HashGate:
    """At most `slots` password hashes at once, and `queue` more requests waiting for a slot; beyond
    that, 503 `busy` with Retry-After at once (a waiting request would hold a waitress thread)."""

    def __init__(self, slots: int, queue: int) -> None:
        self.capacity = slots + queue
        self._slots = threading.BoundedSemaphore(slots)
        self._admitted = threading.BoundedSemaphore(self.capacity)

    @classmethod
    def for_this_machine(cls) -> HashGate:
        """Half the cores hash at most (one on a 2-core machine), so chats keep the rest; a few more may
        wait their turn (a hash takes ~0.1 s: a handful of clients starting at once all get in)."""
        slots = max(1, (os.cpu_count() or 2) // 2)
        return cls(slots, queue=6 * slots)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._admitted.acquire(blocking=False):
            raise ApiError(503, "busy", "too many logins and registrations at once: try again shortly",
                           headers={"Retry-After": "1"})
        try:
            with self._slots:
                yield
        finally:
            self._admitted.release()


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def password_matches(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; an unknown user (None) still pays for one hash check."""
    matches = check_password_hash(stored_hash or _DUMMY_HASH, password)
    return matches and stored_hash is not None


@lru_cache(maxsize=4)
def serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=TOKEN_SALT)


def password_fingerprint(secret: str, password_hash: str) -> str:
    """16 hex digits that change with the password hash (keyed: a token reveals nothing of the hash)."""
    return hmac.new(secret.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:16]


def issue_token(secret: str, user_id: int, password_hash: str) -> str:
    """A signed token naming `user_id` and its password hash's fingerprint, valid for TOKEN_TTL_S seconds."""
    return serializer(secret).dumps({"uid": user_id, "pwf": password_fingerprint(secret, password_hash)})


@dataclass(frozen=True)
class Claim:
    """What a valid token says: the user id, and the fingerprint of the password hash it was issued for."""

    uid: int
    pwf: str


def token_claim(secret: str, token: str, max_age: int = TOKEN_TTL_S) -> Claim:
    """What a token was issued for; 401 when it is malformed, forged or expired."""
    try:
        payload = serializer(secret).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        # itsdangerous refuses a token dated ahead of the clock as "expired": it is not, it was
        # signed wrongly (it would outlive its TTL), so it is invalid.
        if exc.date_signed is not None and exc.date_signed > datetime.now(timezone.utc):
            raise ApiError(401, "invalid_token", INVALID_TOKEN) from None
        raise ApiError(401, "token_expired", "the access token has expired: log in again") from None
    except BadSignature:
        raise ApiError(401, "invalid_token", INVALID_TOKEN) from None
    except (OverflowError, OSError, ValueError):  # a signed date past what datetime holds (year > 9999)
        raise ApiError(401, "invalid_token", INVALID_TOKEN) from None
    uid, pwf = (payload.get("uid"), payload.get("pwf")) if isinstance(payload, dict) else (None, None)
    # `type(...) is int`: a bool is an int (`true` would be user 1); too large a uid made SQLite raise.
    if type(uid) is not int or not 0 < uid < USER_ID_LIMIT or not isinstance(pwf, str):
        raise ApiError(401, "invalid_token", INVALID_TOKEN)
    return Claim(uid, pwf)


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "missing_token", "an Authorization: Bearer <token> header is required")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "invalid_token", "the Authorization header must be 'Bearer <token>'")
    return token.strip()


def request_user_id() -> int:
    """The id of the active user the request's bearer token was issued for (401 otherwise)."""
    return current_user().id


def load_active_user(connection: sa.Connection | Session, user_id: int) -> sa.Row:
    """The user's (id, username, is_active, remembered_facts) as a plain row; 401 when gone or disabled."""
    return active(connection.execute(ACTIVE_USER, {"uid": user_id}).first())


def active(row: sa.Row | None) -> sa.Row:
    """`row`, a users row with `is_active`; 401 when it is missing (the account is gone) or disabled."""
    if row is None or not row.is_active:
        raise ApiError(401, "invalid_token", "the account of this access token no longer exists or is disabled")
    return row


def current_user() -> CurrentUser:
    """The active user the request's bearer token was issued for, as plain values; 401 when the token is
    invalid, the account gone or disabled, or its password changed since (another account with the
    same id has another password hash)."""
    secret = current_app.config["SECRET_KEY"]
    claim = token_claim(secret, _bearer_token())
    with current_app.extensions["rai_db"].transaction() as connection:
        row = load_active_user(connection, claim.uid)
    if not hmac.compare_digest(password_fingerprint(secret, row.password_hash), claim.pwf):
        raise ApiError(401, "invalid_token", "this access token was issued before the account's password "
                                             "changed, or for an account that no longer exists: log in again")
    return CurrentUser(row.id, row.username)

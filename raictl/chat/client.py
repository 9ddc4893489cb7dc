"""The RAI API's HTTP client: credentials, tokens, finding the running API, chat (whole or streamed)
and sessions; no Typer and no printing of its own here (the REPL is raictl/chat/repl.py).

Owns, in <home>:
  credentials.json   the local account (when RAI_USER/RAI_PASSWORD are not set), created once, 0600
  token.json         the cached bearer token, 0600, renewed once when the API answers 401; tied to
                     the password it was got with (a salted PBKDF2 fingerprint), so a changed
                     RAI_PASSWORD is checked by the API rather than hidden by the cache
  last_session.json  the last session id per user, for `raictl chat -c`
and reads the supervisor's record (raictl/supervisor/state.py) to find the API where `raictl up`
started it and to say why it is down.
Only stdlib here (urllib; services/sse.py reads a stream): `raictl chat "hi"` pays for no HTTP
library and no rich until it renders.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, TypeGuard

from raictl.errors import RaictlError
from raictl.supervisor import states
from raishared.private_files import create_private, keep_private, write_json_atomic
from raishared.settings import Settings, base_url
from services import sse

CREDENTIALS_FILE = "credentials.json"
TOKEN_FILE = "token.json"
LAST_SESSION_FILE = "last_session.json"
SERVICE_NAME = "rai-chat-api"
SUPERVISED_NAME = "rai_api"  # the supervisor's name for the RAI API in its record of what it started
PROBE_TIMEOUT = 5.0  # the RAI API's health itself waits up to 1s on the LLM API's
REQUEST_TIMEOUT = 30.0
CHAT_TIMEOUT = 300.0  # a real model can take a while; Ctrl-C interrupts sooner
TOKEN_MARGIN_S = 30  # renew a token this long before it expires rather than send a dying one
FINGERPRINT_ROUNDS = 20_000  # a few ms per chat; makes guessing RAI_PASSWORD from token.json slow


# ---------------------------------------------------------------- private files

def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing or not a JSON object."""
    try:
        document = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):  # UnicodeDecodeError is a ValueError too
        return None
    except OSError as exc:  # a directory in its place, no permission: name it rather than crash
        raise RaictlError(f"cannot read {path}: {exc.strerror or exc}",
                          hint=f"fix or remove {path}; raictl recreates it") from None
    return document if isinstance(document, dict) else None


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """A write into <home> that fails (read-only, full, not a folder) as one line and a hint, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise RaictlError(f"cannot write {path}: {exc.strerror or exc}",
                          hint="RAICTL_HOME must be a writable folder with free space (`raictl doctor host.home`); "
                               "point RAICTL_HOME elsewhere or free some space") from None


# ---------------------------------------------------------------- credentials

@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""
    origin: str = ""  # "RAI_USER" or the credentials file's path, for error messages

    def __repr__(self) -> str:  # never a password in a log or traceback
        return f"Credentials(username={self.username!r}, origin={self.origin!r})"


def load_credentials(home: Path, environ: Mapping[str, str], notes: list[str] | None = None) -> Credentials:
    """RAI_USER/RAI_PASSWORD when set, else the local account in <home>/credentials.json (made once).

    A credentials file found readable by others is made 0600 again and a note appended to `notes`.
    """
    user, password = environ.get("RAI_USER", "").strip(), environ.get("RAI_PASSWORD", "")
    if user or password:
        if not (user and password):
            raise RaictlError("RAI_USER and RAI_PASSWORD must be set together",
                              hint="set both, or unset both to use the local account kept in RAICTL_HOME")
        return Credentials(user, password, "RAI_USER")
    path = home / CREDENTIALS_FILE
    fresh = {"username": f"raictl-{secrets.token_hex(6)}", "password": secrets.token_urlsafe(24)}
    with writing(path):
        create_private(path, json.dumps(fresh))  # first writer wins; everyone then reads the same account
    if (note := keep_private(path)) is not None and notes is not None:
        notes.append(note)
    stored = read_json(path) or {}
    if not (isinstance(stored.get("username"), str) and isinstance(stored.get("password"), str)):
        raise RaictlError(f"{path} does not hold a username and a password",
                          hint="delete it and a new local account is created on the next chat")
    return Credentials(stored["username"], stored["password"], str(path))


# ---------------------------------------------------------------- HTTP

@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or the text when the answer was not JSON


# Never send loopback traffic through an HTTP proxy taken from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _open(method: str, url: str, body: Any, token: str | None, timeout: float, accept: str) -> Any:
    """Send one request; the response with its body unread (an HTTP error status is a response too),
    a network failure raises OSError."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", accept)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        return _OPENER.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        return exc
    except urllib.error.URLError as exc:  # URLError wraps the socket error: unwrap it
        reason = exc.reason
        raise reason if isinstance(reason, OSError) else OSError(str(reason)) from None


def _reply(status: int, payload: bytes) -> Reply:
    try:
        return Reply(status, json.loads(payload))
    except ValueError:
        return Reply(status, payload.decode(errors="replace"))


def request(method: str, url: str, body: Any = None, token: str | None = None,
            timeout: float = REQUEST_TIMEOUT) -> Reply:
    """One HTTP exchange; an HTTP error status is a Reply, a network failure raises OSError."""
    with _open(method, url, body, token, timeout, "application/json") as response:
        return _reply(response.status, response.read())


def stream_request(url: str, body: Any, token: str | None, timeout: float) -> Reply | Any:
    """POST `body` asking for server-sent events: the open response when the API streams, else the
    Reply it answered instead (an error before the first byte)."""
    response = _open("POST", url, body, token, timeout, sse.MIMETYPE)
    if response.status == 200 and (response.headers.get("Content-Type") or "").startswith(sse.MIMETYPE):
        return response
    with response:
        return _reply(response.status, response.read())


def _message(reply: Reply) -> str:
    body = reply.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"HTTP {reply.status}" + (f": {body.strip()[:200]}" if isinstance(body, str) and body.strip() else "")


def api_error(reply: Reply, doing: str, llm_running: bool = False) -> RaictlError:
    """The RaictlError for an error reply of the RAI API, with the hint that fits its status.
    `llm_running`: raictl's LLM API runs, so `raictl up` is not what an unreachable one needs."""
    code = reply.body.get("error") if isinstance(reply.body, dict) else None
    message = _message(reply)
    if reply.status == 503 and code == "llm_unavailable" and llm_running and "unreachable" in message:
        return RaictlError(message, hint="raictl's LLM API runs, but not where the RAI API calls it: check "
                                         "LLM_API_URL (`raictl doctor wiring`), then `raictl restart rai_api`")
    if reply.status == 503 and code == "llm_unavailable":  # down, or up with its engine failing (e.g. Gemini 429)
        return RaictlError(message, hint="`raictl status` shows the LLM API, `raictl logs llm_api` its errors; "
                                         "`raictl up` starts it")
    if reply.status == 503 and code == "schema_mismatch":  # the message names the state and what to run
        return RaictlError(f"{doing}: {message}", hint="`raictl doctor db` shows where the schema stands")
    if reply.status == 404:
        return RaictlError(f"{doing}: {message}", hint="`raictl sessions` lists your sessions")
    if reply.status in (400, 413, 422):
        return RaictlError(f"{doing}: {message}", hint="change the input to follow that rule and try again")
    return RaictlError(f"{doing}: the RAI API answered HTTP {reply.status}: {message}",
                       hint="`raictl logs rai_api` shows why")


# ---------------------------------------------------------------- finding the stack

@dataclass(frozen=True)
class Stack:
    url: str
    health: dict[str, Any]

    @property
    def engine(self) -> str | None:
        return self.health.get("llm_engine")


def _record(home: Path, name: str) -> Any:
    """What `raictl up` last recorded about service `name` (a ServiceRecord), or None: nothing
    recorded, or a damaged record (then the settings alone say where to look; `raictl status` names
    the damage)."""
    from raictl.supervisor.state import DamagedState, read_state

    try:
        return read_state(home).services.get(name)
    except (DamagedState, RaictlError):
        return None


def supervised_record(home: Path) -> Any:
    """The supervisor's record of the RAI API (a ServiceRecord), or None."""
    return _record(home, SUPERVISED_NAME)


def llm_running(home: Path) -> bool:
    """Whether the supervisor's record has raictl's LLM API running, and its process is there."""
    from raictl.supervisor.identity import lookup

    record = _record(home, "llm_api")
    if record is None or record.state != states.RUNNING or record.identity is None:
        return False
    return lookup(record.identity) is not None


def from_mock(response: dict[str, Any]) -> bool:
    """Whether a chat reply came from the mock engine (its label), not from a model or the database."""
    from services.llm_api import MOCK_LABEL

    return str(response.get("response", "")).startswith(MOCK_LABEL)


def decode_message(data: bytes) -> str:
    """The message piped to `raictl chat -`: UTF-8 text without its trailing newlines."""
    try:
        return data.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError as exc:
        raise RaictlError(f"the message on stdin is not UTF-8 text (byte {data[exc.start]:#04x} at offset "
                          f"{exc.start})", hint="pipe text, e.g. `iconv -t UTF-8 FILE | raictl chat -`",
                          exit_code=2) from None


def candidate_urls(settings: Settings, record: Any) -> list[str]:
    """The settings' addresses first, then any other address the supervisor says it started the API on."""
    urls = [base_url(host, settings.rai_api_port) for host in settings.rai_api_hosts]
    if record is not None and isinstance(record.port, int):
        urls += [base_url(str(host), record.port) for host in record.hosts]
    return list(dict.fromkeys(urls))


def locate(settings: Settings, timeout: float = PROBE_TIMEOUT) -> Stack:
    """The first of the RAI API's addresses whose /api/health answers as the RAI API."""
    record = supervised_record(settings.home)
    tried = candidate_urls(settings, record)
    for url in tried:
        try:
            reply = request("GET", f"{url}/api/health", timeout=timeout)
        except TimeoutError:  # something accepted the connection and then hung: not "down"
            raise RaictlError(f"{url} accepted a connection but its /api/health did not answer within "
                              f"{timeout:.0f}s", hint="`raictl status` and `raictl logs rai_api` show why") from None
        except OSError:
            continue
        service = reply.body.get("service") if isinstance(reply.body, dict) else None
        if service != SERVICE_NAME:  # e.g. the LLM API on the RAI API's port: the log's port mix-up
            raise RaictlError(f"{url} answers, but not as the RAI API (service: {service or 'unknown'})",
                              hint="check RAI_API_PORT; `raictl status` shows what runs where")
        return Stack(url, reply.body)
    message = f"the RAI API is not reachable at {', '.join(tried)}"
    if record is not None and record.state in states.TROUBLED:  # the supervisor knows more: say it
        reason = f": {record.reason}" if record.reason else ""
        raise RaictlError(f"{message}; `raictl up` left it {record.state}{reason}",
                          hint="`raictl logs rai_api` shows why, then run `raictl up`")
    raise RaictlError(message, hint="run `raictl up`")


# ---------------------------------------------------------------- the client

class ChatClient:
    """Talks to the RAI API as one user: logs in (or registers) once, caches the token, renews on 401."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.home = settings.home
        self.notes: list[str] = []  # things the user should know (a file made private again), for the command to show
        self.credentials = load_credentials(self.home, os.environ if environ is None else environ, self.notes)
        self._stack: Stack | None = None
        self._fingerprints: dict[str, str] = {}

    @property
    def stack(self) -> Stack:
        """The running RAI API, found on first use."""
        if self._stack is None:
            self._stack = locate(self.settings)
        return self._stack

    @property
    def engine(self) -> str | None:
        """Which LLM engine serves, as the RAI API's health says ("mock", "gemini", or None)."""
        return self.stack.engine

    # -- API calls

    def chat(self, message: str, session_id: str | None = None, system: str | None = None) -> dict[str, Any]:
        """Send one message (`system`: the prompt a new session keeps); returns the whole response object
        and remembers its session."""
        answer = self._exchange("POST", "/api/chat", _chat_body(message, session_id, system), CHAT_TIMEOUT)
        if answer.status >= 400:
            raise self._chat_failed(answer, session_id)
        reply = answer.body
        if not isinstance(reply, dict) or "response" not in reply:
            raise RaictlError(f"the RAI API's chat reply has no response: {str(reply)[:200]}",
                              hint="`raictl logs rai_api` shows why")
        if reply.get("session_id"):
            self.save_last_session(reply["session_id"])
        return reply

    def chat_stream(self, message: str, session_id: str | None = None, system: str | None = None) -> "ReplyStream":
        """Send one message asking for the reply as it is generated; a refusal before the first byte
        raises here, as `chat` does."""
        body = {**_chat_body(message, session_id, system), "stream": True}
        opened = self._send_stream(body, self._token())
        if isinstance(opened, Reply) and opened.status == 401:  # expired, or signed by a changed secret
            opened = self._send_stream(body, self._token(renew=True))
        if isinstance(opened, Reply):
            raise self._chat_failed(opened, session_id)
        return ReplyStream(opened, self)

    def _chat_failed(self, answer: Reply, session_id: str | None) -> RaictlError:
        if answer.status == 404 and session_id and session_id == self.last_session():
            self.save_last_session(None)  # gone (deleted elsewhere, another database): -c must not stay stuck on it
            return RaictlError(f"chat: {_message(answer)}", hint="it is forgotten: the next `raictl chat -c` "
                                                                 "starts a new session")
        return api_error(answer, "chat", llm_running(self.home))

    def sessions(self) -> list[dict[str, Any]]:
        """This user's sessions, as the API lists them."""
        reply = self._call("GET", "/api/sessions", None, "listing sessions")
        return reply.get("sessions", []) if isinstance(reply, dict) else list(reply or [])

    def session(self, session_id: str) -> dict[str, Any]:
        """One of this user's sessions: `messages` oldest first, its `system_prompt` and token `usage` totals."""
        reply = self._call("GET", f"/api/sessions/{_segment(session_id)}/messages", None,
                           f"reading session {session_id}")
        return reply if isinstance(reply, dict) else {"messages": list(reply or [])}

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        """The messages of one of this user's sessions, oldest first."""
        return self.session(session_id).get("messages", [])

    def delete(self, session_id: str) -> dict[str, Any]:
        """Delete one of this user's sessions."""
        reply = self._call("DELETE", f"/api/sessions/{_segment(session_id)}", None,
                           f"deleting session {session_id}")
        if self.last_session() == session_id:
            self.save_last_session(None)
        return reply if isinstance(reply, dict) else {"deleted": session_id}

    # -- the last session, per user

    def last_session(self) -> str | None:
        """The session `-c` continues: the last one this user chatted in from this home."""
        stored = read_json(self.home / LAST_SESSION_FILE) or {}
        return stored.get(self.credentials.username) or None

    def save_last_session(self, session_id: str | None) -> None:
        path = self.home / LAST_SESSION_FILE
        stored = read_json(path) or {}
        stored[self.credentials.username] = session_id
        with writing(path):
            write_json_atomic(path, stored)

    # -- transport and tokens

    def _call(self, method: str, path: str, body: Any, doing: str, timeout: float = REQUEST_TIMEOUT) -> Any:
        reply = self._exchange(method, path, body, timeout)
        if reply.status >= 400:
            raise api_error(reply, doing)
        return reply.body

    def _exchange(self, method: str, path: str, body: Any, timeout: float) -> Reply:
        reply = self._send(method, path, body, self._token(), timeout)
        if reply.status == 401:  # expired, or signed by a secret that has since changed: renew once
            reply = self._send(method, path, body, self._token(renew=True), timeout)
        return reply

    def _send(self, method: str, path: str, body: Any, token: str | None, timeout: float) -> Reply:
        with self._transport_errors(timeout):
            return request(method, f"{self.stack.url}{path}", body, token, timeout)

    def _send_stream(self, body: Any, token: str | None) -> Reply | Any:
        with self._transport_errors(CHAT_TIMEOUT):
            return stream_request(f"{self.stack.url}/api/chat", body, token, CHAT_TIMEOUT)

    @contextmanager
    def _transport_errors(self, timeout: float) -> Iterator[None]:
        """A request that times out or fails on the network, as one line saying which."""
        try:
            yield
        except TimeoutError:
            raise RaictlError(f"the RAI API at {self.stack.url} did not answer within {timeout:.0f}s",
                              hint="`raictl status` and `raictl logs rai_api` show why") from None
        except OSError as exc:
            raise RaictlError(f"the RAI API at {self.stack.url} stopped answering ({exc})",
                              hint="run `raictl up`") from None

    def _token(self, renew: bool = False) -> str:
        path = self.home / TOKEN_FILE
        if (note := keep_private(path)) is not None:
            self.notes.append(note)
        cached = read_json(path) or {}
        if not renew and self._still_good(cached):
            return cached["access_token"]
        login = self._login()
        expires_in = login.get("expires_in")
        expires_at = time.time() + (expires_in if _is_number(expires_in) else 0) - TOKEN_MARGIN_S
        salt = secrets.token_hex(8)
        with writing(path):
            write_json_atomic(path, {"username": self.credentials.username, "url": self.stack.url,
                                     "access_token": login["access_token"], "expires_at": expires_at,
                                     "salt": salt, "password_fingerprint": self._fingerprint(salt)})
        return login["access_token"]

    def _still_good(self, cached: dict[str, Any]) -> bool:
        """Whether a cached token is this user's, for this API and password, and not about to expire;
        anything odd in the file (hand-edited, older format) just means a fresh login."""
        salt, expires_at = cached.get("salt"), cached.get("expires_at")
        return (cached.get("username") == self.credentials.username and cached.get("url") == self.stack.url
                and isinstance(cached.get("access_token"), str) and _is_number(expires_at)
                and expires_at > time.time() and isinstance(salt, str)
                and secrets.compare_digest(str(cached.get("password_fingerprint")), self._fingerprint(salt)))

    def _fingerprint(self, salt: str) -> str:
        if salt not in self._fingerprints:  # the REPL checks the cache on every message: derive once
            password = self.credentials.password.encode("utf-8", "surrogateescape")
            self._fingerprints[salt] = hashlib.pbkdf2_hmac("sha256", password, salt.encode(),
                                                           FINGERPRINT_ROUNDS).hex()
        return self._fingerprints[salt]

    def _login(self) -> dict[str, Any]:
        """Log in; an unknown account is registered first (the local one, or RAI_USER's on first use)."""
        creds = {"username": self.credentials.username, "password": self.credentials.password}
        reply = self._send("POST", "/api/auth/login", creds, None, REQUEST_TIMEOUT)
        if reply.status == 401:
            registered = self._send("POST", "/api/auth/register", creds, None, REQUEST_TIMEOUT)
            if registered.status >= 400 and registered.status != 409:  # 409: a racing raictl was first
                error = api_error(registered, f"registering {self.credentials.username}")
                if registered.status == 400 and self.credentials.origin == "RAI_USER":
                    error.hint = "choose RAI_USER and RAI_PASSWORD that follow that rule"
                raise error
            reply = self._send("POST", "/api/auth/login", creds, None, REQUEST_TIMEOUT)
        if reply.status == 401:
            raise RaictlError(f"the RAI API refused the password of {self.credentials.username} "
                              f"(from {self.credentials.origin}): {_message(reply)}", hint=self._login_hint())
        if reply.status >= 400 or not isinstance(reply.body, dict) or "access_token" not in reply.body:
            raise api_error(reply, f"logging in as {self.credentials.username}")
        return reply.body

    def _login_hint(self) -> str:
        if self.credentials.origin == "RAI_USER":
            return "check RAI_PASSWORD, or unset RAI_USER and RAI_PASSWORD to use the local account"
        return f"the account was made for another database: delete {self.credentials.origin} to make a new one"


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _segment(session_id: str) -> str:
    """The id as one URL path segment; an id with a '/' is no session (the server would see a path)."""
    from urllib.parse import quote

    if "/" in session_id or not session_id.strip():
        raise RaictlError(f"no session {session_id!r}: a session id holds no '/' and is not blank",
                          hint="`raictl sessions` lists your sessions")
    return quote(session_id, safe="")


def start_session(client: ChatClient, continue_last: bool, session_id: str | None,
                  system: str | None = None) -> str | None:
    """The session a chat starts in: the given one, the last one (-c), or None for a new one."""
    if session_id is not None and not session_id.strip():  # "" must not quietly mean "a new session"
        raise RaictlError("--session needs a session id", hint="`raictl sessions` lists your sessions", exit_code=2)
    if session_id and continue_last:
        raise RaictlError("give either --continue or --session, not both", exit_code=2)
    if system is not None and (session_id or continue_last):
        raise RaictlError("--system starts a new session: it cannot be combined with --continue or --session",
                          hint="a session keeps the system prompt it began with", exit_code=2)
    return session_id or (client.last_session() if continue_last else None)


def _chat_body(message: str, session_id: str | None, system: str | None) -> dict[str, Any]:
    """A chat request: the session to continue, or for a new one the system prompt it keeps."""
    if session_id:
        return {"message": message, "session_id": session_id}
    return {"message": message, **({"system": system} if system else {})}


class ReplyStream:
    """A chat reply as it arrives (POST /api/chat with "stream": true): iterate for its text pieces.
    `session_id` (from `start`), `text` (what arrived) and `done` (the last event: engine, usage) fill
    in as it goes; an `error` event raises RaictlError. Leaving early (Ctrl-C) closes the connection:
    the RAI API then stores what it produced, marked interrupted (DESIGN.md, the disconnect rule)."""

    def __init__(self, response: Any, client: ChatClient) -> None:
        self.response, self.client = response, client
        self.session_id: str | None = None
        self.text = ""
        self.done: dict[str, Any] | None = None

    @property
    def engine(self) -> str | None:
        return (self.done or {}).get("engine")

    def __iter__(self) -> Iterator[str]:
        try:
            for event in sse.read_events(self.response):
                data = event.data if isinstance(event.data, dict) else {}
                if event.name == "start" and data.get("session_id"):
                    self.session_id = data["session_id"]
                    self.client.save_last_session(self.session_id)
                elif event.name == "delta":
                    self.text += str(data.get("text", ""))
                    yield str(data.get("text", ""))
                elif event.name == "done":
                    self.done = data
                elif event.name == "error":
                    raise api_error(Reply(503, data), "chat", llm_running(self.client.home))
        except (OSError, http.client.HTTPException) as exc:
            raise RaictlError(f"the RAI API stopped in the middle of the reply ({exc or type(exc).__name__})",
                              hint="`raictl logs rai_api` shows why; what arrived is kept in the session") from None
        finally:
            self.response.close()
        if self.done is None:
            raise RaictlError("the RAI API ended the reply without finishing it",
                              hint="`raictl logs rai_api` shows why; what arrived is kept in the session")

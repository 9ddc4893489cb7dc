"""The RAI API through Flask's test client: every endpoint, every bad input, on SQLite and MariaDB.

The LLM API it talks to is the real one (`python -m services.llm_api`, mock engine) on a free port,
so the chat replies below are the mock's report of the prompt the RAI API built.
"""

from __future__ import annotations

import re
import time

import pytest
from alembic import command
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from migrations import alembic_config
from raishared.settings import load_settings
from services.rai_api import auth
from services.rai_api.app import create_app
from tests.support import ServiceProcess, free_port, service_env, wait_until

PASSWORD = "correct horse"
MOCK_REPLY = re.compile(r'\[mock\] reply to "(?P<text>.*)" \(messages: (?P<messages>\d+), earlier: \d+, '
                        r"system prompt: (?P<system>yes|no), remembered facts: (?P<facts>\d+), "
                        r"recalled: (?P<recalled>\d+)\)", re.S)


def _app(database_url: str, llm_url: str):
    return create_app(load_settings(database_url=database_url, llm_api_url=llm_url))


@pytest.fixture
def app(db_url, llm_api):
    command.upgrade(alembic_config(db_url), "head")
    app = _app(db_url, llm_api.url(""))
    yield app
    app.extensions["rai_db"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def lite_client(sqlite_url, llm_api):
    """For input rules, checked before the database matters: SQLite only."""
    command.upgrade(alembic_config(sqlite_url), "head")
    app = _app(sqlite_url, llm_api.url(""))
    yield app.test_client()
    app.extensions["rai_db"].dispose()


def register(client, username="alice", password=PASSWORD):
    return client.post("/api/auth/register", json={"username": username, "password": password})


def login(client, username="alice", password=PASSWORD) -> dict[str, str]:
    """Register and log in `username`; the Authorization header of its token."""
    assert register(client, username, password).status_code == 201
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['access_token']}"}


def chat(client, headers, message, session_id=None):
    body = {"message": message} if session_id is None else {"message": message, "session_id": session_id}
    return client.post("/api/chat", json=body, headers=headers)


def mock_report(response) -> dict[str, str]:
    assert response.status_code == 200, response.json
    match = MOCK_REPLY.fullmatch(response.json["response"])
    assert match, response.json["response"]
    return match.groupdict()


def assert_error(response, status: int, code: str | None = None) -> str:
    """The response is JSON {"error", "message"} with `status`; returns the message."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert set(body) == {"error", "message"} and body["message"], body
    if code:
        assert body["error"] == code, body
    return body["message"]


# --- accounts ---------------------------------------------------------------------------------

def test_register_login_and_token(client):
    response = register(client)
    assert response.status_code == 201 and response.json["username"] == "alice"
    response = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json["token_type"] == "bearer" and response.json["expires_in"] == auth.TOKEN_TTL_S
    headers = {"Authorization": f"Bearer {response.json['access_token']}"}
    assert client.get("/api/sessions", headers=headers).json == {"sessions": []}


def test_password_is_stored_hashed(app, client):
    import sqlalchemy as sa

    register(client)
    with app.extensions["rai_db"].session_scope() as session:
        stored = session.execute(sa.text("SELECT password_hash FROM users")).scalar_one()
    assert PASSWORD not in stored and auth.password_matches(stored, PASSWORD)


def test_username_taken_is_409(client):
    register(client)
    assert "already taken" in assert_error(register(client, password="another password"), 409, "username_taken")
    assert "already taken" in assert_error(register(client, "ALICE", "another password"), 409, "username_taken")


def test_usernames_are_case_insensitive_and_exact(client):
    register(client, "Alice")
    assert client.post("/api/auth/login", json={"username": "aLiCe", "password": PASSWORD}).status_code == 200
    assert_error(client.post("/api/auth/login", json={"username": "alice ", "password": PASSWORD}), 401)


def test_register_rejects_bad_usernames_and_passwords(lite_client):
    for username in ["ab", "x" * 33, "has space", "semi;colon", "ünïcode", ""]:
        assert "3-32 characters" in assert_error(register(lite_client, username=username), 400, "invalid_input")
    for password in ["short", "x" * 129]:
        assert "8-128 characters" in assert_error(register(lite_client, password=password), 400, "invalid_input")


def test_register_accepts_the_edges_of_the_rules(lite_client):
    assert register(lite_client, "a.b", "x" * 8).status_code == 201
    assert register(lite_client, "A_9-" + "z" * 28, "y" * 128).status_code == 201


def test_register_and_login_need_both_strings(lite_client):
    for body in [{"username": "alice"}, {"password": PASSWORD}, {"username": 5, "password": PASSWORD},
                 {"username": "alice", "password": None}]:
        for path in ("/api/auth/register", "/api/auth/login"):
            assert_error(lite_client.post(path, json=body), 400, "invalid_input")


def test_login_says_the_same_for_unknown_user_and_wrong_password(client):
    register(client)
    wrong = client.post("/api/auth/login", json={"username": "alice", "password": "wrong password"})
    unknown = client.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert assert_error(wrong, 401, "invalid_credentials") == assert_error(unknown, 401, "invalid_credentials")


# --- tokens -----------------------------------------------------------------------------------

class _LongAgoSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - auth.TOKEN_TTL_S - 60


def _signed(secret: str, payload, signer=TimestampSigner) -> str:
    return URLSafeTimedSerializer(secret, salt=auth.TOKEN_SALT, signer=signer).dumps(payload)


def test_tokens_missing_malformed_forged_or_expired_are_401(lite_client):
    client, app = lite_client, lite_client.application
    login(client)
    secret = app.config["SECRET_KEY"]
    cases = {
        "missing_token": {},
        "invalid_token": {"Authorization": "Basic YWxpY2U6eA=="},
    }
    for code, headers in cases.items():
        assert_error(client.get("/api/sessions", headers=headers), 401, code)
    for token, code in [("garbage", "invalid_token"),
                        (_signed("another secret", {"uid": 1}), "invalid_token"),
                        (_signed(secret, {"uid": "1"}), "invalid_token"),
                        (_signed(secret, {"uid": 1}, _LongAgoSigner), "token_expired")]:
        response = client.post("/api/chat", json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"})
        assert_error(response, 401, code)


def _signed_at(timestamp: int):
    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return timestamp
    return Signer


def test_a_token_signed_in_the_future_is_invalid_not_expired(lite_client):
    """A token dated ahead would outlive its 24 h; one dated past what datetime holds was a 500."""
    headers = login(lite_client)
    assert lite_client.get("/api/sessions", headers=headers).status_code == 200
    secret = lite_client.application.config["SECRET_KEY"]
    for timestamp in [int(time.time()) + 3600, int(time.time()) + auth.TOKEN_TTL_S * 365, 2**62]:
        token = {"Authorization": f"Bearer {_signed(secret, {'uid': 1}, _signed_at(timestamp))}"}
        assert "not valid" in assert_error(lite_client.get("/api/sessions", headers=token), 401, "invalid_token")


def test_a_signed_token_whose_uid_is_not_a_user_id_is_401(client):
    """A uid past SQLite's 64-bit INTEGER was a 500 (OverflowError); `true` (a bool is an int) was user 1."""
    headers = login(client)
    assert client.get("/api/sessions", headers=headers).status_code == 200
    secret = client.application.config["SECRET_KEY"]
    for uid in [10**30, 2**63, True, 0, -1, 1.0, None]:
        token = {"Authorization": f"Bearer {_signed(secret, {'uid': uid})}"}
        assert_error(client.get("/api/sessions", headers=token), 401, "invalid_token")
        assert_error(client.post("/api/chat", json={"message": "hi"}, headers=token), 401, "invalid_token")


def test_token_of_a_user_that_is_gone_is_401(app, client):
    import sqlalchemy as sa

    headers = login(client)
    with app.extensions["rai_db"].session_scope() as session:
        session.execute(sa.text("DELETE FROM users"))
    assert "no longer exists" in assert_error(client.get("/api/sessions", headers=headers), 401)


# --- chat and sessions ------------------------------------------------------------------------

def test_chat_creates_a_session_and_sends_its_history(client):
    headers = login(client)
    first = chat(client, headers, "Hello there")
    report = mock_report(first)
    assert (report["text"], report["messages"], report["system"]) == ("Hello there", "1", "yes")
    assert first.json["status"] == "success"
    session_id = first.json["session_id"]
    second = chat(client, headers, "And again", session_id)
    assert second.json["session_id"] == session_id
    assert mock_report(second)["messages"] == "3"  # both earlier messages went along as context
    messages = client.get(f"/api/sessions/{session_id}/messages", headers=headers).json["messages"]
    assert [(m["role"], m["content"][:9]) for m in messages] == [
        ("user", "Hello the"), ("assistant", "[mock] re"), ("user", "And again"), ("assistant", "[mock] re")]


def _message_rows(app, session_id: str) -> int:
    import sqlalchemy as sa

    with app.extensions["rai_db"].transaction() as connection:
        return connection.execute(sa.text("SELECT COUNT(*) FROM messages WHERE session_id = :s"),
                                  {"s": session_id}).scalar()


def test_sessions_list_and_delete(app, client):
    headers = login(client)
    one = chat(client, headers, "first topic").json["session_id"]
    two = chat(client, headers, "second topic").json["session_id"]
    listed = client.get("/api/sessions", headers=headers).json["sessions"]
    assert {s["id"] for s in listed} == {one, two}
    assert {s["title"] for s in listed} == {"first topic", "second topic"}
    assert all(s["message_count"] == 2 for s in listed)
    assert _message_rows(app, one) == 2
    response = client.delete(f"/api/sessions/{one}", headers=headers)
    assert response.status_code == 200 and response.json["session_id"] == one
    assert _message_rows(app, one) == 0  # the messages went with their session
    assert [s["id"] for s in client.get("/api/sessions", headers=headers).json["sessions"]] == [two]
    assert_error(client.get(f"/api/sessions/{one}/messages", headers=headers), 404, "session_not_found")
    assert_error(client.delete(f"/api/sessions/{one}", headers=headers), 404, "session_not_found")


def test_another_users_session_is_404_everywhere(client):
    alice = login(client, "alice")
    bob = login(client, "bob")
    session_id = chat(client, alice, "alice's secret").json["session_id"]
    assert client.get("/api/sessions", headers=bob).json == {"sessions": []}
    assert_error(client.get(f"/api/sessions/{session_id}/messages", headers=bob), 404, "session_not_found")
    assert_error(client.delete(f"/api/sessions/{session_id}", headers=bob), 404, "session_not_found")
    assert_error(chat(client, bob, "let me in", session_id), 404, "session_not_found")
    assert_error(chat(client, bob, "remember that I am alice", session_id), 404, "session_not_found")
    unknown = "00000000-0000-0000-0000-000000000000"
    assert_error(chat(client, alice, "hello", unknown), 404, "session_not_found")
    assert len(client.get(f"/api/sessions/{session_id}/messages", headers=alice).json["messages"]) == 2


# --- memory -----------------------------------------------------------------------------------

def test_remembered_facts_reach_a_new_session_and_can_be_forgotten(client):
    headers = login(client)
    reply = chat(client, headers, "remember that my cat is called Miso").json["response"]
    assert "my cat is called Miso" in reply
    assert "already" in chat(client, headers, "Remember that my cat is called Miso.").json["response"]
    assert "- my cat is called Miso" in chat(client, headers, "What do you remember?").json["response"]
    report = mock_report(chat(client, headers, "What is my cat called?"))
    assert report["facts"] == "1" and int(report["recalled"]) > 0
    assert "Miso" in chat(client, headers, "forget my cat").json["response"]
    report = mock_report(chat(client, headers, "Hello"))
    assert report["facts"] == "0"
    assert "don't remember anything" in chat(client, headers, "what do you remember?").json["response"]


def test_facts_and_recall_belong_to_their_user(client):
    alice = login(client, "alice")
    bob = login(client, "bob")
    chat(client, alice, "remember that my cat is called Miso")
    chat(client, alice, "my cat Miso likes tuna")
    report = mock_report(chat(client, bob, "what does my cat Miso like?"))
    assert (report["facts"], report["recalled"]) == ("0", "0")


def test_recall_searches_only_the_newest_messages_of_the_database(app, client):
    from services.rai_api import memory
    from services.rai_api.models import Message

    alice, bob = login(client, "alice"), login(client, "bob")
    chat(client, alice, "my parrot Kiwi whistles")
    assert int(mock_report(chat(client, alice, "what does Kiwi do?"))["recalled"]) > 0
    bobs_session = chat(client, bob, "filler").json["session_id"]
    filler = [{"session_id": bobs_session, "role": "user", "content": "filler"}] * memory.RECALL_WINDOW
    with app.extensions["rai_db"].transaction(write=True) as connection:
        connection.execute(Message.__table__.insert(), filler)
    assert mock_report(chat(client, alice, "what does Kiwi do?"))["recalled"] == "0"


# --- bad input --------------------------------------------------------------------------------

BAD_CHAT_BODIES = [
    (b"{not json", "malformed_json"),
    (b"[1, 2]", "malformed_json"),
    (b'"a string"', "malformed_json"),
    (b"\xff\xfe\x00", "malformed_json"),
    (b"{}", "invalid_input"),
    (b'{"message": 42}', "invalid_input"),
    (b'{"message": ""}', "invalid_input"),
    (b'{"message": "   \\n "}', "invalid_input"),
    (b'{"message": "hi", "session_id": 7}', "invalid_input"),
    (b'{"message": "hi", "session_id": ""}', "invalid_input"),
    (b'{"message": "hi", "session_id": "' + b"a" * 37 + b'"}', "invalid_input"),
    (b'{"message": "lone \\ud800 surrogate"}', "invalid_input"),
    (b'{"message": "hi", "session_id": "\\udfff"}', "invalid_input"),
]


def test_chat_rejects_bad_bodies(lite_client):
    headers = login(lite_client)
    for body, code in BAD_CHAT_BODIES:
        response = lite_client.post("/api/chat", data=body, headers=headers, content_type="application/json")
        assert response.status_code == 400, body
        assert_error(response, 400, code)


def test_a_body_that_is_not_an_object_is_named_in_json_words(lite_client):
    for body, name in [(b"null", "null"), (b"[1]", "an array"), (b'"x"', "a string"), (b"1.5", "a number"),
                       (b"7", "a number"), (b"true", "true")]:
        response = lite_client.post("/api/auth/login", data=body, content_type="application/json")
        assert assert_error(response, 400, "malformed_json") == f"the body must be a JSON object, not {name}"


def test_chat_message_length_limits(lite_client):
    headers = login(lite_client)
    assert "8000" in assert_error(chat(lite_client, headers, "x" * 8001), 400, "invalid_input")
    assert mock_report(chat(lite_client, headers, "y" * 8000))["text"] == "y" * 80


def test_body_too_large_is_413(lite_client):
    client = lite_client
    headers = login(client)
    response = client.post("/api/chat", data=b'{"message": "' + b"x" * 300_000 + b'"}', headers=headers,
                           content_type="application/json")
    assert "larger than" in assert_error(response, 413, "payload_too_large")
    assert_error(client.post("/api/auth/register", data=b"x" * 300_000), 413, "payload_too_large")


def test_a_body_not_sent_as_json_is_415_so_no_web_page_can_post_it(lite_client):
    """text/plain and forms are what a web page may POST to 127.0.0.1 without a CORS preflight."""
    client = lite_client
    headers = login(client)
    credentials = b'{"username": "mallory", "password": "correct horse"}'
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]:
        for path, body in [("/api/auth/register", credentials), ("/api/auth/login", credentials),
                           ("/api/chat", b'{"message": "hi"}')]:
            response = client.post(path, data=body, headers=headers, content_type=content_type)
            message = assert_error(response, 415, "unsupported_media_type")
            assert "Content-Type: application/json" in message and f"(got {content_type or 'none'})" in message
    assert_error(client.post("/api/auth/login", json={"username": "mallory", "password": "correct horse"}), 401)
    assert client.get("/api/sessions", headers=headers).json == {"sessions": []}
    json_utf8 = "application/json; charset=utf-8"
    assert client.post("/api/auth/register", data=credentials, content_type=json_utf8).status_code == 201


def test_unknown_endpoint_and_wrong_method_are_json(lite_client):
    assert "/api/nope" in assert_error(lite_client.get("/api/nope"), 404, "not_found")
    response = lite_client.get("/api/chat")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


ODD_BODIES = [b"", b"null", b'{"username": {}}', b'{"message": ["x"]}', b"1e999999", b'{"a": ' * 2000,
              b'{"username": "\\ud800bob", "password": "\\ud800\\ud800\\ud800\\ud800", "message": "\\ud800"}',
              '{"username": "\ud800"}'.encode("utf-8", "surrogatepass")]


def test_odd_bodies_get_a_4xx_with_a_reason(lite_client):
    headers = login(lite_client, "oddity")
    for path in ["/api/auth/register", "/api/auth/login", "/api/chat"]:
        for body in ODD_BODIES:
            response = lite_client.post(path, data=body, headers=headers, content_type="application/json")
            assert 400 <= response.status_code < 500, (path, body[:20], response.status_code)
            assert_error(response, response.status_code)


# --- health and outages -----------------------------------------------------------------------

def test_health_checks_database_schema_and_llm(client, llm_api):
    body = client.get("/api/health").json
    assert body == {"status": "ok", "service": "rai-chat-api", "database_status": "ok", "schema": "ok",
                    "llm_status": "ok", "llm_engine": "mock", "llm_url": llm_api.url("")}


def test_llm_api_down_is_503_with_the_reason(db_url):
    command.upgrade(alembic_config(db_url), "head")
    dead = f"http://127.0.0.1:{free_port()}"
    app = _app(db_url, dead)
    try:
        client = app.test_client()
        headers = login(client)
        message = assert_error(chat(client, headers, "anyone there?"), 503, "llm_unavailable")
        assert dead in message and "refused" in message
        assert client.get("/api/sessions", headers=headers).json == {"sessions": []}  # nothing half-stored
        assert chat(client, headers, "remember that the LLM was down").status_code == 200
        health = client.get("/api/health").json
        assert (health["status"], health["llm_status"], health["llm_engine"]) == ("degraded", "unreachable", None)
    finally:
        app.extensions["rai_db"].dispose()


def test_llm_api_error_is_503_with_its_reason(sqlite_url, tmp_path):
    """The real LLM API asked for Gemini without a key answers 503; chat passes its reason on."""
    command.upgrade(alembic_config(sqlite_url), "head")
    port = free_port()
    env = service_env(tmp_path, LLM_ENGINE="gemini", LLM_API_PORT=str(port), LLM_API_HOSTS="127.0.0.1")
    llm = ServiceProcess("services.llm_api", port, env, hosts=("127.0.0.1",), log=tmp_path / "llm.log").start()
    app = _app(sqlite_url, llm.url(""))
    try:
        client = app.test_client()
        message = assert_error(chat(client, login(client), "hello"), 503, "llm_unavailable")
        assert "answered 503" in message and "GEMINI_API_KEY" in message
        health = client.get("/api/health").json
        assert (health["status"], health["llm_status"], health["llm_engine"]) == ("degraded", "degraded", "gemini")
    finally:
        app.extensions["rai_db"].dispose()
        llm.stop()


def test_schema_behind_is_reported_not_hidden(db_url, llm_api, caplog):
    """The log's incident: the code expects users.remembered_facts, the database lacks it."""
    command.upgrade(alembic_config(db_url), "0001_initial")
    app = _app(db_url, llm_api.url(""))
    try:
        client = app.test_client()
        health = client.get("/api/health").json
        assert (health["status"], health["schema"], health["database_status"]) == ("degraded", "behind", "ok")
        headers = login(client)  # neither touches the missing column; chat does
        response = chat(client, headers, "remember that this fails")
        message = assert_error(response, 503, "schema_mismatch")
        assert "the schema is 'behind': run `raictl migrate`" in message
        assert "remembered_facts" not in message  # no table or column named to a client (issue 13)...
        assert "database error" in caplog.text and "remembered_facts" in caplog.text  # ...the log has it
        assert "scrypt" not in caplog.text and PASSWORD not in caplog.text and "this fails" not in caplog.text
    finally:
        app.extensions["rai_db"].dispose()


def test_health_notices_a_column_dropped_while_it_runs(app, client, db_url):
    """The schema state is cached for health.DATABASE_TTL_S (5 s), not for the process's lifetime."""
    import sqlalchemy as sa

    from services.rai_api import health

    assert client.get("/api/health").json["schema"] == "ok"
    other = sa.create_engine(db_url, poolclass=sa.pool.NullPool)  # as `raictl` or a DBA would, from outside
    with other.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE users DROP COLUMN remembered_facts")
    other.dispose()
    assert health.DATABASE_TTL_S <= 5
    wait_until(lambda: client.get("/api/health").json["schema"] == "drift", timeout=15, interval=0.25,
               what="health to report the dropped column as drift")
    assert client.get("/api/health").json["status"] == "degraded"


def test_a_column_dropped_at_head_answers_503_naming_the_repair(app, client, db_url):
    """Drift, not a database outage: the 503 names the state and `raictl migrate --repair`, which fixes
    it (a plain `raictl migrate` would find nothing to do at head)."""
    import sqlalchemy as sa

    headers = login(client)
    other = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with other.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE users DROP COLUMN remembered_facts")
    other.dispose()
    message = assert_error(chat(client, headers, "remember that this fails"), 503, "schema_mismatch")
    assert "the schema is 'drift': run `raictl migrate --repair`" in message, message


def test_database_server_down_is_503_not_500(llm_api):
    app = _app(f"mysql+pymysql://root@127.0.0.1:{free_port()}/rai", llm_api.url(""))
    try:
        client = app.test_client()
        health = client.get("/api/health")
        assert health.status_code == 503
        assert (health.json["database_status"], health.json["schema"]) == ("error", "unknown")
        response = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        assert "Can't connect" in assert_error(response, 503, "database_unavailable")
    finally:
        app.extensions["rai_db"].dispose()

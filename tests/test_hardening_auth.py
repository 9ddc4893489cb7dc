"""Issue 13, items 1, 2, 7 and 10 replayed on the RAI API (Flask's test client, SQLite and MariaDB):
a stale token opening the next account, a long reply lost on MariaDB, login brute force, and session
ids matched loosely.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from alembic import command

from migrations import alembic_config
from raishared.settings import load_settings
from services.rai_api import throttle
from services.rai_api.app import create_app
from tests.support import ServiceProcess, free_port, run_sql, service_env, wait_until, with_connection

PASSWORD = "correct horse"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def app(db_url, llm_api, clock):
    command.upgrade(alembic_config(db_url), "head")
    app = create_app(load_settings(database_url=db_url, llm_api_url=llm_api.url("")), clock=clock)
    yield app
    app.extensions["rai_db"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def register(client, username, password=PASSWORD):
    return client.post("/api/auth/register", json={"username": username, "password": password})


def login(client, username, password=PASSWORD, address="127.0.0.1"):
    return client.post("/api/auth/login", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def token_of(client, username) -> dict[str, str]:
    assert register(client, username).status_code == 201
    response = login(client, username)
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['access_token']}"}


# --- item 1: a deleted user's token never opens the next account -------------------------------

def test_a_deleted_users_token_does_not_open_the_next_account(client, db_url):
    token_of(client, "alice")
    mallory = token_of(client, "mallory")  # the highest id
    run_sql(db_url, "DELETE FROM users WHERE username = 'mallory'")
    victim = token_of(client, "victim")
    secret = client.post("/api/chat", json={"message": "remember that my bank PIN is 4321"}, headers=victim)
    assert secret.status_code == 200
    ids = with_connection(db_url, lambda c: dict(c.exec_driver_sql("SELECT username, id FROM users").all()))
    assert ids["victim"] > ids["alice"] + 1  # mallory's id was not given again
    for path in ("/api/sessions", f"/api/sessions/{secret.json['session_id']}/messages"):
        response = client.get(path, headers=mallory)
        assert (response.status_code, response.json["error"]) == (401, "invalid_token"), response.json
    response = client.post("/api/chat", json={"message": "what do you remember?"}, headers=mallory)
    assert response.status_code == 401 and "4321" not in response.get_data(as_text=True)


def test_a_token_of_a_reused_id_is_refused_even_without_autoincrement(client, db_url):
    """The same user id given to another account (a database from before revision 0003, or restored):
    the token is bound to the account's password hash, not only its id."""
    mallory = token_of(client, "mallory")
    run_sql(db_url, "UPDATE users SET username = 'victim', password_hash = 'pbkdf2:sha256:1$x$y' "
                    "WHERE username = 'mallory'")
    response = client.get("/api/sessions", headers=mallory)
    assert (response.status_code, response.json["error"]) == (401, "invalid_token")


def test_a_password_change_ends_the_old_tokens(client, db_url):
    from services.rai_api.auth import hash_password

    headers = token_of(client, "alice")
    assert client.get("/api/sessions", headers=headers).status_code == 200
    new_hash = hash_password("another horse")
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE users SET password_hash = :h WHERE username = 'alice'"), {"h": new_hash})
    engine.dispose()
    assert client.get("/api/sessions", headers=headers).status_code == 401
    assert login(client, "alice", "another horse").status_code == 200


# --- item 7: failed logins are limited per username and per address ----------------------------

def test_a_password_guessed_is_refused_once_the_limit_is_reached(client, clock):
    token_of(client, "alice")
    token_of(client, "bob")
    for guess in range(throttle.LOGIN_LIMIT):
        assert login(client, "alice", f"guess {guess:04}").status_code == 401
    response = login(client, "alice", "guess 9999")
    assert (response.status_code, response.json["error"]) == (429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= throttle.WINDOW_S
    right = login(client, "alice")  # the right password does not get through either
    assert right.status_code == 429 and "access_token" not in right.json
    assert login(client, "bob").status_code == 200  # another user, same address: not locked out
    clock.now += throttle.WINDOW_S + 1
    assert login(client, "alice").status_code == 200


def test_once_a_lock_is_seen_refused_attempts_read_nothing_until_the_window_ends(app, client, clock):
    """A flood on a locked account is answered from the process's memory: no database statement (each
    used to cost a read, and made a refused login cost three health requests), and the lock still ends
    with its window."""
    token_of(client, "alice")
    for guess in range(throttle.LOGIN_LIMIT):
        assert login(client, "alice", f"guess {guess:04}").status_code == 401
    assert login(client, "alice").status_code == 429  # seen here
    statements: list[str] = []
    engine = app.extensions["rai_db"].engine
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for _ in range(20):
        refused = login(client, "alice")
        assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= throttle.WINDOW_S
    assert statements == []
    clock.now += throttle.WINDOW_S + 1
    assert login(client, "alice").status_code == 200 and statements  # the database decides again


def test_an_unknown_user_is_limited_like_a_known_one(client):
    for guess in range(throttle.LOGIN_LIMIT):
        assert login(client, "nobody", f"guess {guess:04}").status_code == 401
    assert login(client, "nobody", "guess").status_code == 429


def test_a_password_spray_locks_the_address_not_the_other_addresses(app, client, clock):
    token_of(client, "alice")
    for i in range(3):
        assert login(client, f"user{i}", "wrong password", address="192.0.2.9").status_code == 401
    limits = app.extensions["rai_login_throttle"]
    for i in range(3, throttle.ADDRESS_LIMIT):  # the rest of the spray counted directly: hashing is slow
        limits.failed(throttle.Attempt(f"user{i}", "192.0.2.9"))
    response = login(client, "alice", address="192.0.2.9")
    assert (response.status_code, response.json["error"]) == (429, "rate_limited")
    assert login(client, "alice", address="198.51.100.1").status_code == 200


def test_the_limit_is_shared_by_processes_on_one_database(db_url, llm_api, clock):
    """Two RAI API processes on one database count one set of failures."""
    command.upgrade(alembic_config(db_url), "head")
    settings = load_settings(database_url=db_url, llm_api_url=llm_api.url(""))
    first, second = create_app(settings, clock=clock), create_app(settings, clock=clock)
    try:
        a, b = first.test_client(), second.test_client()
        assert register(a, "alice").status_code == 201
        for i in range(throttle.LOGIN_LIMIT):
            assert login(a if i % 2 else b, "alice", f"guess {i}").status_code == 401
        assert login(a, "alice").status_code == 429 and login(b, "alice").status_code == 429
    finally:
        first.extensions["rai_db"].dispose()
        second.extensions["rai_db"].dispose()


def test_a_login_flood_is_bounded_not_queued(app, client):
    """Password hashing runs on a few slots; a flood beyond them is told to come back (503 busy),
    instead of every request thread hashing and starving the chats."""
    token_of(client, "alice")
    gate = app.extensions["rai_hash_gate"]
    flood = gate.capacity + 12
    barrier, statuses = threading.Barrier(flood), []

    def attempt(i: int) -> None:
        own = app.test_client()
        barrier.wait()
        statuses.append(own.post("/api/auth/login", json={"username": f"flood{i}", "password": "wrong password"},
                                 environ_base={"REMOTE_ADDR": f"203.0.113.{i}"}))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(flood)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    codes = sorted(r.status_code for r in statuses)
    assert set(codes) <= {401, 503} and 503 in codes, codes
    busy = next(r for r in statuses if r.status_code == 503)
    assert busy.json["error"] == "busy" and int(busy.headers["Retry-After"]) >= 1


def test_a_taken_username_is_refused_without_hashing(app, client):
    """While every hashing place is taken (a flood of logins in flight), registering a taken name is
    still answered 409 at once: it costs a read, not a hash (it waited for a slot before, or got 503)."""
    token_of(client, "alice")
    gate = app.extensions["rai_hash_gate"]
    release, inside = threading.Event(), threading.Semaphore(0)

    def occupy() -> None:
        with gate.slot():
            inside.release()
            release.wait(30)

    holder = threading.Thread(target=occupy)  # takes the one slot of this 2-core machine, or more
    holder.start()
    inside.acquire(timeout=30)
    waiting = []
    try:
        # the rest of the places: each waits for the slot, holding its place (as queued requests do)
        for _ in range(gate.capacity - 1):
            thread = threading.Thread(target=occupy)
            thread.start()
            waiting.append(thread)
        wait_until(lambda: _gate_full(gate), timeout=30, what="every place of the hashing gate taken")
        taken = client.post("/api/auth/register", json={"username": "alice", "password": PASSWORD})
        assert (taken.status_code, taken.json["error"]) == (409, "username_taken")
        new = client.post("/api/auth/register", json={"username": "carol", "password": PASSWORD})
        assert (new.status_code, new.json["error"]) == (503, "busy")  # a new name does need a hash
    finally:
        release.set()
        for thread in [holder, *waiting]:
            thread.join(30)


def _gate_full(gate) -> bool:
    """Whether every place of the gate is held (its admission semaphore is at zero; read, not changed,
    apart from the probe's own acquire and release)."""
    if gate._admitted.acquire(blocking=False):
        gate._admitted.release()
        return False
    return True


# --- item 10: session ids are matched exactly ---------------------------------------------------

def test_a_session_id_is_matched_exactly(client):
    headers = token_of(client, "alice")
    sid = client.post("/api/chat", json={"message": "remember that tea is green"}, headers=headers).json["session_id"]
    for variant in (sid.upper(), sid + " ", sid[:-1] + sid[-1].upper() if sid[-1].isalpha() else sid.upper()):
        response = client.get(f"/api/sessions/{variant}/messages", headers=headers)
        assert (response.status_code, response.json["error"]) == (404, "session_not_found"), variant
        response = client.post("/api/chat", json={"message": "what do you remember?", "session_id": variant},
                               headers=headers)
        assert response.json["error"] in ("session_not_found", "invalid_input"), variant  # 37 characters: 400
        response = client.delete(f"/api/sessions/{variant}", headers=headers)
        assert response.status_code == 404
    assert client.get(f"/api/sessions/{sid}/messages", headers=headers).status_code == 200


# --- item 2: a long reply is stored, never lost after it was generated ---------------------------

def test_a_reply_of_68000_bytes_is_stored(db_url, tmp_path, fake_gemini):
    """The real LLM API on Gemini (the fake server) answering 68,000 bytes: stored whole on MariaDB."""
    reply = ("Lorem ipsum dolor sit amet. " * 2500)[:68_000]
    fake_gemini.reply(reply)
    port = free_port()
    llm = ServiceProcess("services.llm_api", port, service_env(
        tmp_path, LLM_ENGINE="gemini", GEMINI_API_KEY="AIza-test-key-0000000000000000000000",
        GEMINI_BASE_URL=fake_gemini.base_url, LLM_API_PORT=str(port), LLM_API_HOSTS="127.0.0.1"),
        hosts=("127.0.0.1",), log=tmp_path / "llm.log").start()
    command.upgrade(alembic_config(db_url), "head")
    app = create_app(load_settings(database_url=db_url, llm_api_url=llm.url("")))
    try:
        client = app.test_client()
        headers = token_of(client, "alice")
        response = client.post("/api/chat", json={"message": "write me a long story"}, headers=headers)
        assert response.status_code == 200, response.json
        stored = client.get(f"/api/sessions/{response.json['session_id']}/messages", headers=headers).json
        assert stored["messages"][1]["content"] == reply
        assert response.json["response"] == reply
    finally:
        app.extensions["rai_db"].dispose()
        llm.stop()


def test_a_reply_over_the_stored_limit_is_kept_with_a_visible_marker():
    """Above STORED_REPLY_MAX characters (more than any column holds in the worst case), the stored
    reply is cut with a marker saying how much was dropped; the turn is never lost."""
    from services.rai_api import rules

    kept = rules.storable_reply("é" * (rules.STORED_REPLY_MAX + 10))
    assert len(kept) <= rules.STORED_REPLY_MAX and kept.startswith("é" * 1000)
    assert kept.endswith(" characters cut: the reply was longer than the database keeps]")
    assert rules.storable_reply("short") == "short"


def test_a_database_error_names_no_table_or_column(app, client, db_url):
    headers = token_of(client, "alice")
    run_sql(db_url, "ALTER TABLE users DROP COLUMN remembered_facts")
    response = client.post("/api/chat", json={"message": "remember that this fails"}, headers=headers)
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    for name in ("remembered_facts", "users.", "rai_t_", sa.make_url(db_url).database or "rai.db"):
        assert name not in body, (name, body)

"""`python -m services.rai_api` served for real by waitress, reached on 127.0.0.1 and [::1]."""

from __future__ import annotations

from alembic import command

from migrations import alembic_config
from tests.support import ServiceProcess, free_port, http, service_env

PASSWORD = "correct horse"


def _rai_api(home, database_url, llm_url):
    port = free_port()
    env = service_env(home, RAI_DATABASE_URL=database_url, RAI_API_PORT=str(port), LLM_API_URL=llm_url)
    return ServiceProcess("services.rai_api", port, env, log=home / "rai_api.log")


def test_served_on_both_loopbacks(db_url, tmp_path):
    command.upgrade(alembic_config(db_url), "head")
    dead_llm = f"http://127.0.0.1:{free_port()}"
    service = _rai_api(tmp_path, db_url, dead_llm).start()
    try:
        v4, v6 = "127.0.0.1", "::1"
        credentials = {"username": "alice", "password": PASSWORD}
        assert http("POST", service.url("/api/auth/register", v4), credentials)[0] == 201
        status, body = http("POST", service.url("/api/auth/login", v6), credentials)
        assert status == 200
        token = body["access_token"]
        status, body = http("POST", service.url("/api/chat", v6), {"message": "hello"}, token=token)
        assert (status, body["error"]) == (503, "llm_unavailable") and dead_llm in body["message"]
        status, body = http("POST", service.url("/api/chat", v4), {"message": "remember that I use IPv6"}, token=token)
        assert status == 200 and "I use IPv6" in body["response"]
        assert http("GET", service.url("/api/sessions", v6), token=token)[1]["sessions"][0]["message_count"] == 2
        status, body = http("POST", service.url("/api/chat", v4), raw=b"{" + b" " * 300_000, token=token)
        assert (status, body["error"]) == (413, "payload_too_large")
        status, body = http("POST", service.url("/api/chat", v6), raw=b"{oops", token=token)
        assert (status, body["error"]) == (400, "malformed_json")
        form_post = b'{"username": "eve", "password": "12345678"}'  # what any web page may send
        status, body = http("POST", service.url("/api/auth/register", v6), raw=form_post,
                            headers={"Content-Type": "text/plain"})
        assert (status, body["error"]) == (415, "unsupported_media_type")
    finally:
        service.stop()


def test_schema_not_at_head_is_logged_once_and_served(sqlite_url, tmp_path):
    service = _rai_api(tmp_path, sqlite_url, f"http://127.0.0.1:{free_port()}").start()
    try:
        for host in service.hosts:
            status, body = http("GET", service.url("/api/health", host))
            assert status == 200
            assert (body["status"], body["schema"], body["llm_status"]) == ("degraded", "behind", "unreachable")
    finally:
        service.stop()
    log = (tmp_path / "rai_api.log").read_text()
    assert log.count("database schema is 'behind', not at head") == 1
    assert "alembic upgrade head" in log and "raictl migrate" in log


def test_concurrent_writers_lose_nothing(db_url, tmp_path):
    """Eight clients at once on one account: no 5xx, no lost update of remembered_facts, every turn stored."""
    from concurrent.futures import ThreadPoolExecutor

    command.upgrade(alembic_config(db_url), "head")
    service = _rai_api(tmp_path, db_url, f"http://127.0.0.1:{free_port()}").start()
    try:
        credentials = {"username": "busy", "password": PASSWORD}
        http("POST", service.url("/api/auth/register"), credentials)
        token = http("POST", service.url("/api/auth/login", "::1"), credentials)[1]["access_token"]

        def client(n: int) -> list[int]:
            host = service.hosts[n % 2]
            return [http("POST", service.url("/api/chat", host), {"message": f"remember that fact {n}-{i}"},
                         token=token)[0] for i in range(5)]

        with ThreadPoolExecutor(8) as pool:
            statuses = [s for result in pool.map(client, range(8)) for s in result]
        assert statuses == [200] * 40
        facts = http("POST", service.url("/api/chat"), {"message": "what do you remember?"}, token=token)[1]
        assert sorted(line for line in facts["response"].splitlines() if line.startswith("- ")) == sorted(
            f"- fact {n}-{i}" for n in range(8) for i in range(5))
        sessions = http("GET", service.url("/api/sessions"), token=token)[1]["sessions"]
        assert len(sessions) == 41 and all(s["message_count"] == 2 for s in sessions)
    finally:
        service.stop()


def _mode(path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_a_new_sqlite_database_is_private_to_its_owner(tmp_path):
    """It holds password hashes and every message: its folder is created 0700, the file 0600, and
    SQLite gives -wal and -shm the file's mode. Checked after a real first start (the RAI API creates
    it) and after a first migration (`raictl up` migrates before it starts the RAI API)."""
    served, migrated = tmp_path / "served" / "db" / "rai.db", tmp_path / "migrated" / "rai.db"
    service = _rai_api(tmp_path, f"sqlite:///{served}", f"http://127.0.0.1:{free_port()}").start()
    try:
        assert http("POST", service.url("/api/auth/login"), {"username": "alice", "password": PASSWORD})[0] == 503
        command.upgrade(alembic_config(f"sqlite:///{migrated}"), "head")
        # The RAI API holds its pooled connection open in WAL mode, so its -wal and -shm exist now.
        files = [served, served.with_name("rai.db-wal"), served.with_name("rai.db-shm"), migrated]
        assert [_mode(p) for p in files] == ["0o600"] * 4
        assert (_mode(served.parent), _mode(migrated.parent)) == ("0o700", "0o700")
    finally:
        service.stop()


def test_a_bad_database_url_is_one_line_and_exit_1(tmp_path):
    import subprocess
    import sys

    env = service_env(tmp_path, RAI_DATABASE_URL="postgresql://someone@127.0.0.1/rai", RAI_API_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-m", "services.rai_api"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "rai-api cannot start: RAI_DATABASE_URL names an unsupported database: postgresql" in done.stderr
    assert "Traceback" not in done.stderr

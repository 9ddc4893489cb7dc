"""Issue 13, item 6: DNS rebinding and cross-origin requests, replayed against both services served for real.

The attack: a page of evil.example re-points its name at 127.0.0.1 and calls the API (`Host:
evil.example`); a page of attacker.example POSTs a register with `Origin: http://attacker.example`.
"""

from __future__ import annotations

import pytest
from alembic import command

from migrations import alembic_config
from tests.support import ServiceProcess, free_port, http, mock_llm_api, service_env

CREDS = {"username": "alice", "password": "correct horse"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The real LLM API (mock) and the RAI API on SQLite, with one extra host and origin configured."""
    home = tmp_path_factory.mktemp("hosts")
    db = f"sqlite:///{home / 'rai.db'}"
    command.upgrade(alembic_config(db), "head")
    llm = mock_llm_api(home)
    port = free_port()
    env = service_env(home, RAI_DATABASE_URL=db, RAI_API_PORT=str(port), LLM_API_URL=llm.url(""),
                      RAICTL_ALLOWED_HOSTS="chat.example.org", RAICTL_ALLOWED_ORIGINS="http://127.0.0.1:5173")
    rai = ServiceProcess("services.rai_api", port, env, log=home / "rai_api.log").start()
    yield rai, llm
    rai.stop()
    llm.stop()


@pytest.mark.parametrize("service", ["rai", "llm"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:6102", "127.0.0.1.evil.example", "localhost.evil"])
def test_a_foreign_host_is_refused(served, service, host):
    target = served[0] if service == "rai" else served[1]
    status, body = http("GET", target.url("/api/health"), headers={"Host": host})
    assert (status, body["error"]) == (400, "host_not_allowed"), body
    assert "evil" in body["message"]


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:6102", "127.0.0.1", "127.0.0.2:1", "[::1]:6102",
                                  "app.localhost", "chat.example.org", "chat.example.org:443"])
def test_loopback_and_configured_hosts_are_served(served, host):
    rai, _ = served
    status, body = http("GET", rai.url("/api/health"), headers={"Host": host})
    assert status == 200 and body["service"] == "rai-chat-api"


def test_a_foreign_host_is_refused_before_routing(served):
    rai, _ = served
    status, body = http("GET", rai.url("/api/nowhere"), headers={"Host": "evil.example"})
    assert (status, body["error"]) == (400, "host_not_allowed")


@pytest.mark.parametrize("origin", ["http://attacker.example", "null", "http://127.0.0.1:1",
                                    "https://127.0.0.1", "http://localhost"])
def test_a_cross_origin_register_is_refused(served, origin):
    rai, _ = served
    creds = {"username": "mallory", "password": "correct horse"}
    status, body = http("POST", rai.url("/api/auth/register"), creds, headers={"Origin": origin})
    assert (status, body["error"]) == (403, "cross_origin"), body
    status, body = http("POST", rai.url("/api/auth/login"), creds)
    assert (status, body["error"]) == (401, "invalid_credentials")  # nothing was created


def test_a_cross_origin_generate_is_refused(served):
    _, llm = served
    prompt = {"messages": [{"role": "user", "content": "spend the quota"}]}
    status, body = http("POST", llm.url("/api/generate"), prompt, headers={"Origin": "http://attacker.example"})
    assert (status, body["error"]) == (403, "cross_origin")
    assert http("POST", llm.url("/api/generate"), prompt)[0] == 200  # no Origin: not a browser's request


def test_the_apis_own_origin_and_configured_ones_may_post(served):
    rai, _ = served
    own = f"http://127.0.0.1:{rai.port}"
    for i, (origin, host) in enumerate([(own, None), (f"http://[::1]:{rai.port}", "::1"),
                                        ("http://127.0.0.1:5173", None), (None, None)]):
        creds = {"username": f"page{i}", "password": "correct horse"}
        headers = {"Origin": origin} if origin else {}
        status, body = http("POST", rai.url("/api/auth/register", host), creds, headers=headers)
        assert status == 201, (origin, body)


def test_a_cross_origin_read_is_answered_without_cors(served):
    """GET is not refused (a browser does not let the page read the answer without CORS headers)."""
    rai, _ = served
    status, body = http("GET", rai.url("/api/health"), headers={"Origin": "http://attacker.example"})
    assert status == 200


def test_settings_reject_bad_hosts_and_origins(monkeypatch):
    from raictl.errors import RaictlError
    from raishared.settings import load_settings

    monkeypatch.setenv("RAICTL_ALLOWED_ORIGINS", "attacker.example")
    with pytest.raises(RaictlError, match="not a web origin"):
        load_settings()
    monkeypatch.setenv("RAICTL_ALLOWED_ORIGINS", "HTTP://Chat.Example.org/")
    monkeypatch.setenv("RAICTL_ALLOWED_HOSTS", "chat.example.org, [2001:db8::1]")
    settings = load_settings()
    assert settings.allowed_origins == ("http://chat.example.org",)
    assert settings.allowed_hosts == ("chat.example.org", "2001:db8::1")
    monkeypatch.setenv("RAICTL_ALLOWED_HOSTS", "http://chat.example.org/")
    with pytest.raises(RaictlError, match="not a host name"):
        load_settings()

"""Issue 13, item 11: a bounded, seeded fuzzer over every endpoint of both services (hypothesis).

Each case is one request to a route of the app's own URL map (so a new endpoint is fuzzed too) with a
random method, path parameter, headers (Host, Origin, Content-Type, Authorization: none, garbage or a
real token) and body (random bytes, random JSON, or the endpoint's valid body with one field
mutated). Every answer must be below 500; every error must be our JSON `{"error", "message"}`; the
service must log no traceback. The apps run in-process (Flask's test client) so a few thousand cases
take seconds; the RAI API talks to the real LLM API (mock engine) over HTTP.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings, strategies as st

from migrations import alembic_config
from raishared.settings import load_settings
from tests.support import mock_llm_api

CASES = 1000  # per service: 2000 in all
FUZZ = settings(max_examples=CASES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))
METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]
HOSTS = ["localhost", "127.0.0.1:6102", "[::1]:6102", "evil.example", "", "localhost:99999", "ä.example"]
ORIGINS = [None, "http://localhost", "http://attacker.example", "null", "http://127.0.0.1:6102", "ftp://x"]
TYPES = [None, "application/json", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
VALID = {
    "/api/auth/register": {"username": "fuzzer", "password": "correct horse"},
    "/api/auth/login": {"username": "fuzzer", "password": "correct horse"},
    "/api/chat": {"message": "hello", "session_id": None, "stream": False},
    "/api/generate": {"messages": [{"role": "user", "content": "hi"}], "system": "be brief", "temperature": 0.5},
}
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=12)
SEGMENTS = st.one_of(st.uuids().map(str), st.text(max_size=40), st.sampled_from(["..", "%00", "ABC ", "a" * 300]))


def _mutated(template: dict) -> st.SearchStrategy:
    return st.sampled_from(sorted(template)).flatmap(
        lambda key: JSON.map(lambda value: {**template, key: value}))


def _body(path: str) -> st.SearchStrategy:
    options = [st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode())]
    if path in VALID:
        options.append(_mutated(VALID[path]).map(lambda v: json.dumps(v).encode()))
    return st.one_of(options)


@st.composite
def requests(draw, rules: list[str], token: str):
    rule = draw(st.sampled_from(rules))
    path = re.sub(r"<[^>]+>", lambda _: draw(SEGMENTS).replace("/", "_") or "x", rule)
    headers = {"Host": draw(st.sampled_from(HOSTS))}
    origin = draw(st.sampled_from(ORIGINS))
    if origin:
        headers["Origin"] = origin
    kind = draw(st.sampled_from(TYPES))
    if kind:
        headers["Content-Type"] = kind
    auth = draw(st.sampled_from([None, f"Bearer {token}", "Bearer x.y.z", "Basic Zm9v", f"Bearer {token}x"]))
    if auth:
        headers["Authorization"] = auth
    if draw(st.booleans()):
        headers["Accept"] = "text/event-stream"
    return draw(st.sampled_from(METHODS)), path, headers, draw(_body(rule))


def _check(response, method: str) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    if response.status_code >= 400 and method != "HEAD":
        body = json.loads(response.get_data())
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body


def _rules(app) -> list[str]:
    return sorted({r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"} | {"/nowhere"})


def _no_tracebacks(caplog) -> None:
    bad = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad[:3]]


@pytest.fixture(scope="module")
def llm_api(tmp_path_factory):
    service = mock_llm_api(tmp_path_factory.mktemp("llm_api"))
    yield service
    service.stop()


def test_fuzz_the_rai_api(sqlite_url, llm_api, caplog):
    from services.rai_api.app import create_app

    command.upgrade(alembic_config(sqlite_url), "head")
    app = create_app(load_settings(database_url=sqlite_url, llm_api_url=llm_api.url("")))
    client = app.test_client()
    assert client.post("/api/auth/register", json=VALID["/api/auth/register"]).status_code == 201
    token = client.post("/api/auth/login", json=VALID["/api/auth/login"]).json["access_token"]
    caplog.set_level(logging.WARNING)

    @FUZZ
    @given(requests(_rules(app), token))
    def one(case):
        method, path, headers, body = case
        _check(client.open(path, method=method, headers=headers, data=body), method)

    try:
        one()
    finally:
        app.extensions["rai_db"].dispose()
    _no_tracebacks(caplog)


def test_fuzz_the_llm_api(tmp_path, caplog):
    from services.llm_api.app import create_app

    app = create_app(load_settings(environ={"RAICTL_HOME": str(tmp_path), "LLM_ENGINE": "mock"}))
    client = app.test_client()
    caplog.set_level(logging.WARNING)

    @FUZZ
    @given(requests(_rules(app), "no-token"))
    def one(case):
        method, path, headers, body = case
        _check(client.open(path, method=method, headers=headers, data=body), method)

    one()
    _no_tracebacks(caplog)

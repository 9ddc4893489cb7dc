"""Shared fixtures: an isolated state folder and environment per test, databases, leftover checks."""

from __future__ import annotations

import os
import uuid

import psutil
import pytest

from raishared.settings import FIELDS
from tests.supervisor_support import Stack
from tests.support import TEST_MARKER, free_port, processes_with_marker

_SETTING_VARS = {var for f in FIELDS for var in f.env} | {"RAI_USER", "RAI_PASSWORD", "RAICTL_DEBUG", "RAICTL_CONTAINER"}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test runs in its own folder with its own RAICTL_HOME and no settings leaking in.

    Every process a test starts inherits RAICTL_TEST_ID; any still alive afterwards fails the test.
    """
    for var in _SETTING_VARS:
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RAICTL_HOME", str(work / ".raictl"))
    marker = uuid.uuid4().hex
    monkeypatch.setenv(TEST_MARKER, marker)
    yield work
    leftovers = [p for p in processes_with_marker(marker) if p.pid != os.getpid()]
    for proc in leftovers:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    assert not leftovers, f"processes left behind: {[(p.pid, p.info) for p in leftovers]}"


def _mysql_server_url() -> str | None:
    url = os.environ.get("RAI_TEST_MYSQL_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("RAI_TEST_MYSQL_URL is not set under CI=true: the MySQL tests must run in CI")
        pytest.skip("RAI_TEST_MYSQL_URL is not set (MariaDB tests skipped)")
    return url


@pytest.fixture
def mysql_url():
    """A fresh, empty MariaDB/MySQL database of this test's own, dropped afterwards."""
    import sqlalchemy as sa

    server = sa.make_url(_mysql_server_url())
    name = f"rai_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'rai.db'}"


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def db_url(request):
    """Each database test runs on SQLite and on MariaDB."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="module")
def llm_api(tmp_path_factory):
    """A real LLM API (mock engine) on 127.0.0.1, one per test module, stopped after it."""
    from tests.support import mock_llm_api

    service = mock_llm_api(tmp_path_factory.mktemp("llm_api"))
    yield service
    service.stop()


@pytest.fixture
def fake_gemini():
    """A fake Gemini REST server on 127.0.0.1 (tests/fake_gemini.py), stopped after the test.

    Point a service at it with GEMINI_BASE_URL=fake_gemini.base_url and any GEMINI_API_KEY.
    """
    from tests.fake_gemini import FakeGemini

    with FakeGemini() as server:
        yield server


@pytest.fixture
def fake_openai():
    """A fake OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py), stopped after the test.

    Point a service at it with OPENAI_BASE_URL=fake_openai.base_url (and OPENAI_MODEL one of fake_openai.models).
    """
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def stack(isolated, monkeypatch):
    """A folder whose raictl.toml declares extra services, and `raictl` run for real inside it.

    The built-ins point at free ports (never the defaults other people use); `down` at teardown.
    """
    monkeypatch.setenv("LLM_API_PORT", str(free_port()))
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    stack = Stack(isolated)
    yield stack
    stack.raictl("down")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item (`item.rep_call`), so a fixture can tell a failed test
    at teardown (the browser tests save a screenshot then)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report

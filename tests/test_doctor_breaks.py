"""Break the stack on purpose, one way per test, with real processes; the right check must say so.

Misbehaving servers are tiny `sys.executable -c` children: one bound to a single address family,
one that accepts connections and never answers. The services themselves run for real.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading

import pytest
from alembic import command

from migrations import alembic_config
from raictl.doctor.checks.host import localhost_addresses
from raictl.doctor.context import Context
from raictl.doctor.registry import Check
from raictl.doctor.runner import make_context, run_checks
from raictl.supervisor.probes import probe_listen
from raishared.settings import host_port, load_settings
from tests.doctor_support import doctor, show
from tests.support import ServiceProcess, free_port, run_sql, service_env, wait_until, with_connection

BIND = """
import http.server, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
class Server(http.server.HTTPServer):
    address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    def server_bind(self):
        if ":" in host:  # what waitress does on `::`
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()
http.server.HTTPServer.allow_reuse_address = True
Server((host, port), http.server.SimpleHTTPRequestHandler).serve_forever()
"""
# Listens on both loopbacks and never accepts: the kernel completes the handshake, nobody answers.
SILENT = """
import socket, sys, time
port = int(sys.argv[1])
socks = []
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, port)); s.listen(16); socks.append(s)
time.sleep(600)
"""


@pytest.fixture
def child():
    """Start `sys.executable -c SCRIPT ARGS...`; every child is killed at the end of the test."""
    procs = []

    def start(script: str, *args, port: int, host: str = "127.0.0.1"):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, args)])
        procs.append(proc)
        wait_until(lambda: proc.poll() is None and probe_listen(host, port).ok, what=f"child on {host} {port}")
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def start_service(module: str, home, port: int, **settings) -> ServiceProcess:
    home.mkdir(parents=True, exist_ok=True)
    env = service_env(home, **settings)
    return ServiceProcess(module, port, env, log=home / f"{module.split('.')[-1]}.log").start()


def database_at_head(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'rai.db'}"
    command.upgrade(alembic_config(url), "head")
    return url


# ------------------------------------------------------------------ services

def test_llm_api_down(tmp_path):
    db, llm_port, rai_port = database_at_head(tmp_path), free_port(), free_port()
    rai = start_service("services.rai_api", tmp_path / "rai", rai_port, RAI_DATABASE_URL=db,
                        RAI_API_PORT=str(rai_port), LLM_API_PORT=str(llm_port))
    try:
        r = doctor(None, "llm_api", "wiring", "rai_api.health", database_url=db, rai_api_port=rai_port,
                   llm_api_port=llm_port)
    finally:
        rai.stop()
    assert r["llm_api.running"].status == "fail" and r["llm_api.running"].hint == "raictl up llm_api", show(r)
    assert r["wiring.live"].status == "fail", show(r)
    assert f"http://127.0.0.1:{llm_port}" in r["wiring.live"].summary
    assert "no LLM API answers where raictl's settings say either" in r["wiring.live"].summary
    assert r["rai_api.health"].status == "warn" and "llm_status=unreachable" in r["rai_api.health"].summary


@pytest.mark.parametrize("bind,refused,words", [
    ("127.0.0.1", "ipv6", "it listens only on 127.0.0.1"),
    ("0.0.0.0", "ipv6", "it listens on 0.0.0.0, which takes IPv4 only"),
    ("::", "ipv4", "it listens on [::] with IPV6_V6ONLY (waitress sets it), which refuses IPv4"),
])
def test_service_bound_to_one_family(child, bind, refused, words):
    port = free_port()
    child(BIND, bind, port, port=port, host="::1" if bind == "::" else "127.0.0.1")
    r = doctor(None, "llm_api", llm_api_port=port, rai_api_port=free_port())
    accepted = "ipv4" if refused == "ipv6" else "ipv6"
    assert r[f"llm_api.listen.{accepted}"].status == "ok", show(r)
    bad = r[f"llm_api.listen.{refused}"]
    assert bad.status == "fail" and words in bad.summary, show(r)
    assert "LLM_API_HOSTS=127.0.0.1,::1" in bad.hint
    first = localhost_addresses(port)[0]
    first_family = "ipv6" if ":" in first else "ipv4"
    expected = "fail" if first_family == refused else ("ok" if len(localhost_addresses(port)) == 1 else "warn")
    assert r["llm_api.localhost"].status == expected, show(r)
    if expected == "fail":
        assert f"gets ECONNREFUSED {host_port(first, port)}" in r["llm_api.localhost"].summary


@pytest.mark.parametrize("hosts,bind,first,words", [
    ("127.0.0.1 localhost\n::1 localhost ip6-localhost\n", "0.0.0.0", "::1",
     "it listens on 0.0.0.0, which takes IPv4 only"),
    ("127.0.0.1 localhost\n", "::", "127.0.0.1", "it listens on [::] with IPV6_V6ONLY"),
])
def test_localhost_resolving_to_the_refused_family_first(child, tmp_path, monkeypatch, hosts, bind, first, words):
    """Log steps 0 and 26: with /etc/hosts mapping localhost to ::1 (tried first), a 0.0.0.0 binding is
    `ECONNREFUSED ::1`. The hosts file is a real one given by RAICTL_HOSTS_FILE; the sockets are real."""
    (tmp_path / "hosts").write_text("# a comment localhost\n" + hosts)
    monkeypatch.setenv("RAICTL_HOSTS_FILE", str(tmp_path / "hosts"))
    port = free_port()
    child(BIND, bind, port, port=port, host="::1" if bind == "::" else "127.0.0.1")
    r = doctor(None, "llm_api.localhost", "host.localhost", llm_api_port=port, rai_api_port=free_port())
    assert localhost_addresses(port)[0] == first
    assert r["host.localhost"].status == "ok" and f"localhost -> {first}" in r["host.localhost"].summary, show(r)
    result = r["llm_api.localhost"]
    assert result.status == "fail", show(r)
    assert result.summary.startswith(f"a client of http://localhost:{port} tries {first} first and gets "
                                     f"ECONNREFUSED {host_port(first, port)}: {words}"), show(r)
    assert result.hint.startswith("LLM_API_HOSTS=127.0.0.1,::1 already includes")
    narrow = doctor(None, "llm_api.localhost", llm_api_port=port, rai_api_port=free_port(),
                    llm_api_hosts="127.0.0.1" if first == "::1" else "::1")["llm_api.localhost"]
    assert narrow.hint == "bind both loopbacks: LLM_API_HOSTS=127.0.0.1,::1, then `raictl restart llm_api`"


def test_hosts_file_order_matches_the_system_resolver(monkeypatch):
    """Reading /etc/hosts through RAICTL_HOSTS_FILE gives the order getaddrinfo gives on this machine."""
    system = localhost_addresses()
    monkeypatch.setenv("RAICTL_HOSTS_FILE", "/etc/hosts")
    assert localhost_addresses() == system

def test_foreign_process_on_the_port(child):
    port = free_port()
    proc = child(BIND, "127.0.0.1", port, port=port)
    r = doctor(None, "rai_api.port", "rai_api.health", "rai_api.running", rai_api_port=port,
               llm_api_port=free_port())
    assert r["rai_api.port"].status == "fail", show(r)
    assert f"pid {proc.pid} (python" in r["rai_api.port"].summary and "import http.server" in r["rai_api.port"].summary
    assert f"kill {proc.pid}" in r["rai_api.port"].hint and "RAI_API_PORT" in r["rai_api.port"].hint
    assert r["rai_api.health"].status == "fail" and "not JSON" in r["rai_api.health"].summary, show(r)


def test_rai_api_pointed_at_the_wrong_llm_port(tmp_path):
    """Log steps 17 and 22: the LLM API runs on one port, the RAI API calls another."""
    db, llm_port, wrong, rai_port = database_at_head(tmp_path), free_port(), free_port(), free_port()
    llm = start_service("services.llm_api", tmp_path / "llm", llm_port, LLM_API_PORT=str(llm_port),
                        LLM_ENGINE="mock")
    try:
        rai = start_service("services.rai_api", tmp_path / "rai", rai_port, RAI_DATABASE_URL=db,
                            RAI_API_PORT=str(rai_port), LLM_API_URL=f"http://127.0.0.1:{wrong}")
        try:
            r = doctor(None, "wiring", database_url=db, rai_api_port=rai_port, llm_api_port=llm_port)
        finally:
            rai.stop()
    finally:
        llm.stop()
    assert r["wiring.config"].status == "ok", show(r)
    live = r["wiring.live"]
    assert live.status == "fail", show(r)
    assert f"calls http://127.0.0.1:{wrong}" in live.summary and f"runs at http://127.0.0.1:{llm_port}" in live.summary
    assert "raictl restart rai_api" in live.hint
    stale = doctor(None, "wiring.config", llm_api_port=llm_port, llm_api_url=f"http://127.0.0.1:{wrong}")
    assert stale["wiring.config"].status == "fail" and f"LLM_API_PORT={llm_port}" in stale["wiring.config"].summary


def test_mock_engine_stands_in_and_a_key_the_service_did_not_get(tmp_path):
    """Log step 21: no key reached the LLM API, so the mock answered."""
    port = free_port()
    llm = start_service("services.llm_api", tmp_path / "llm", port, LLM_API_PORT=str(port))
    try:
        without_key = doctor(None, "llm.engine", llm_api_port=port, rai_api_port=free_port())
        with_key = doctor(None, "llm.engine", llm_api_port=port, rai_api_port=free_port(),
                          environ={"GEMINI_API_KEY": "AIzaSyD-NOT-REACHING-THE-SERVICE-0000"})
    finally:
        llm.stop()
    engine = without_key["llm.engine"]
    assert engine.status == "warn" and "mock engine stands in" in engine.summary and "GEMINI_API_KEY" in engine.hint
    missed = with_key["llm.engine"]
    assert missed.status == "fail" and "started without it" in missed.summary and "AIza…0000" in missed.summary
    assert "raictl restart llm_api" in missed.hint and "NOT-REACHING" not in missed.summary


def test_key_set_but_the_real_call_fails(tmp_path, fake_gemini):
    key, port = "AIzaSyD-REJECTED-0123456789abcdefghijk", free_port()
    fake_gemini.fail(403)
    llm = start_service("services.llm_api", tmp_path / "llm", port, LLM_API_PORT=str(port), GEMINI_API_KEY=key,
                        GEMINI_BASE_URL=fake_gemini.base_url)
    try:
        through = doctor(None, "llm.gemini", llm_api_port=port, rai_api_port=free_port(),
                         environ={"GEMINI_API_KEY": key})["llm.gemini"]
    finally:
        llm.stop()
    direct = doctor(None, "llm.gemini", llm_api_port=port, rai_api_port=free_port(),
                    environ={"GEMINI_API_KEY": key, "GEMINI_BASE_URL": fake_gemini.base_url})["llm.gemini"]
    for result, via in ((through, "through the LLM API"), (direct, "directly")):
        assert result.status == "fail" and via in result.summary, result
        assert "rejected the API key" in result.summary and "GEMINI_API_KEY" in result.hint
        assert key not in result.summary


# Answers the plain health as a Gemini-serving LLM API, and the deep one (a real call) with a proxy's text page.
TEXT_DEEP_HEALTH = """
import http.server, json, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        deep = self.path.endswith("deep=1")
        body = b"502 Bad Gateway: upstream timed out" if deep else json.dumps(
            {"status": "ok", "service": "llm-api", "engine": "gemini", "model": "gemini-x"}).encode()
        self.send_response(502 if deep else 200)
        self.send_header("Content-Type", "text/plain" if deep else "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_deep_health_that_is_not_json_is_a_clear_fail(child):
    """The LLM API's port answers the real call with text/plain: llm.gemini names the status and the text."""
    key, port = "AIzaSyD-TEXTPLAIN-0123456789abcdefghij", free_port()
    child(TEXT_DEEP_HEALTH, port, port=port)
    result = doctor(None, "llm.gemini", llm_api_port=port, llm_api_hosts="127.0.0.1", rai_api_port=free_port(),
                    environ={"GEMINI_API_KEY": key})["llm.gemini"]
    assert result.status == "fail", result
    assert "HTTP 502" in result.summary and "502 Bad Gateway: upstream timed out" in result.summary, result
    assert "not JSON" in result.summary and key not in result.summary


def test_no_network_is_a_reason_not_a_hang():
    """Without a network Gemini cannot be reached: llm.gemini says so; everything else runs locally, no check hangs."""
    key, closed = "AIzaSyD-OFFLINE-0123456789abcdefghijkl", free_port()
    r = doctor(None, llm_api_port=free_port(), rai_api_port=free_port(),
               environ={"GEMINI_API_KEY": key, "GEMINI_BASE_URL": f"http://127.0.0.1:{closed}"})
    gemini = r["llm.gemini"]
    assert gemini.status == "fail" and f"cannot reach Gemini at http://127.0.0.1:{closed}" in gemini.summary, show(r)
    assert "network" in gemini.hint and key not in show(r)
    assert not [x for x in r.values() if "timed out" in x.summary], show(r)

def test_a_service_that_accepts_and_never_answers(child):
    port = free_port()
    child(SILENT, port, port=port)
    r = doctor(None, rai_api_port=port, llm_api_port=free_port())
    health = r["rai_api.health"]
    assert health.status == "fail" and "accepted the connection but sent no answer" in health.summary, show(r)
    assert "hung" in health.hint and "rai_api.port" in health.hint
    assert r["rai_api.port"].status == "fail" and r["e2e.chat"].status == "skip"
    assert r["rai_api.listen.ipv4"].status == "ok" and r["rai_api.listen.ipv6"].status == "ok"


# ------------------------------------------------------------------ database


def test_unknown_alembic_revision(db_url):
    """Log step 29: `Can't locate revision 3f2724846ff9`, and the column it never added."""
    command.upgrade(alembic_config(db_url), "0001_initial")
    run_sql(db_url, "UPDATE alembic_version SET version_num = '3f2724846ff9'")
    r = doctor(None, "db", database_url=db_url)
    assert r["db.reachable"].status == "ok", show(r)
    assert r["db.revision"].status == "fail" and "3f2724846ff9" in r["db.revision"].summary
    assert r["db.revision"].hint == "raictl migrate --repair"
    assert r["db.schema"].status == "fail" and "column users.remembered_facts" in r["db.schema"].summary


@pytest.mark.parametrize("setup", [
    "UPDATE alembic_version SET version_num = '3f2724846ff9'",
    "INSERT INTO alembic_version VALUES ('0002_remembered_facts')",
    "DELETE FROM alembic_version",
])
def test_db_revision_words_a_state_as_migrate_refuses_it(db_url, setup):
    """One wording per schema state: doctor's finding is the line `raictl migrate` refuses with."""
    from raictl.migrate import Refusal, read_database_state, refuse_unresolvable

    command.upgrade(alembic_config(db_url), "0001_initial")
    run_sql(db_url, setup)
    with pytest.raises(Refusal) as refused:
        refuse_unresolvable(read_database_state(db_url))
    result = doctor(None, "db.revision", database_url=db_url)["db.revision"]
    assert (result.status, result.summary, result.hint) == ("fail", refused.value.message, refused.value.hint)


def test_missing_column(db_url):
    command.upgrade(alembic_config(db_url), "head")
    run_sql(db_url, "ALTER TABLE users DROP COLUMN remembered_facts")
    r = doctor(None, "db", database_url=db_url)
    assert r["db.revision"].status == "ok", show(r)
    assert r["db.schema"].status == "fail" and r["db.schema"].hint == "raictl migrate --repair"
    assert "missing column users.remembered_facts" in r["db.schema"].summary


def test_unreachable_database_is_a_finding():
    port = free_port()  # nothing listens there
    r = doctor(None, "db", database_url=f"mysql+pymysql://root@127.0.0.1:{port}/rai")
    assert r["db.reachable"].status == "fail" and "127.0.0.1" in r["db.reachable"].summary, show(r)
    assert {r["db.revision"].status, r["db.schema"].status} == {"skip"}


def test_database_urls_the_rai_api_accepts_or_refuses(child):
    """Plain mysql:// is pymysql (as for the RAI API); another database is one line; a server that takes
    the connection and never greets is a finding within the connect and read timeouts."""
    silent = free_port()
    child(SILENT, silent, port=silent)
    unsupported = doctor(None, "db", database_url="postgresql://u:pw-SECRET-1@127.0.0.1/x")["db.reachable"]
    assert unsupported.status == "fail" and unsupported.summary.endswith("unsupported database: postgresql")
    assert "mysql+pymysql://" in unsupported.hint
    r = doctor(None, "db", database_url=f"mysql://root:pw-SECRET-2@127.0.0.1:{silent}/rai")
    assert r["db.reachable"].status == "fail" and "timed out" in r["db.reachable"].summary, show(r)
    assert "does not answer" in r["db.reachable"].hint and "pw-SECRET-2" not in show(r)
    assert {r["db.revision"].status, r["db.schema"].status} == {"skip"}


def test_wrong_database_password_is_named_never_shown(mysql_url):
    import sqlalchemy as sa

    wrong = sa.make_url(mysql_url).set(password="wrong-PW-123").render_as_string(hide_password=False)
    r = doctor(None, "db", database_url=wrong)
    assert r["db.reachable"].status == "fail" and "Access denied" in r["db.reachable"].summary, show(r)
    assert "password" in r["db.reachable"].hint and "wrong-PW-123" not in show(r)

# ------------------------------------------------------------------ logs

TRACEBACK = """Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/flask/app.py", line 880, in full_dispatch_request
  File "{project}/services/rai_api/{file}", line {line}, in handler
    the_line()
  File "/venv/lib/python3.11/site-packages/sqlalchemy/orm/attributes.py", line 566, in __get__
{error}
"""
SIGNATURE_LINES = {
    "DetachedInstanceError": "sqlalchemy.orm.exc.DetachedInstanceError: Instance <User at 0x7f> is not bound "
                             "to a Session; attribute refresh operation cannot proceed",
    "ModuleNotFoundError": "ModuleNotFoundError: No module named 'llm_Engine'",
    "unexpected keyword": "TypeError: EpisodicMemoryManager.__init__() got an unexpected keyword argument "
                          "'base_data_path'",
    "missing argument": "TypeError: ContextualMemoryManager.process_forget_command() missing 1 required "
                        "positional argument: 'user_input'",
    "NameError": "NameError: name 'get_user_memory_dir' is not defined",
    "AttributeError": "AttributeError: 'ContextualMemoryManager' object has no attribute 'user_memory_dir'",
    "Unknown column": "sqlalchemy.exc.ProgrammingError: (pymysql.err.ProgrammingError) (1054, \"Unknown column "
                      "'users.remembered_facts' in 'field list'\")",
    "Can't locate revision": "alembic.util.exc.CommandError: Can't locate revision identified by '3f2724846ff9'",
    "ECONNREFUSED": "Error: connect ECONNREFUSED ::1:6102",
    "Address already in use": "OSError: [Errno 98] Address already in use",
    "killed by signal": "[raictl 2025-04-04 21:39:00.000] exited: killed by SIGKILL",
}


@pytest.mark.parametrize("name", list(SIGNATURE_LINES))
def test_log_signature_becomes_a_diagnosis(isolated, name):
    logs = isolated / ".raictl" / "logs"
    logs.mkdir(parents=True)
    line = 10 + list(SIGNATURE_LINES).index(name)
    (logs / "rai_api.log").write_text("2025-04-04 21:38:00 INFO rai-api listening\n" + TRACEBACK.format(
        project="/srv/rai", file="auth.py", line=line, error=SIGNATURE_LINES[name]))
    result = doctor(isolated, "logs.rai_api")["logs.rai_api"]
    assert result.status == "fail" and result.hint, result
    assert f"/srv/rai/services/rai_api/auth.py:{line}" in result.summary, result  # the project frame, not a library's


def test_log_findings_before_the_last_start_only_warn(isolated):
    logs = isolated / ".raictl" / "logs"
    logs.mkdir(parents=True)
    (logs / "llm_api.log").write_text(
        "ModuleNotFoundError: No module named 'llm_Engine'\n"
        "[raictl 2025-04-04 21:40:00.000] started pid 4242: python -m services.llm_api\n"
        "2025-04-04 21:40:01 INFO llm-api listening on 127.0.0.1:6301 [::1]:6301\n")
    result = doctor(isolated, "logs.llm_api")["logs.llm_api"]
    assert result.status == "warn" and "earlier run" in result.summary and "llm_Engine" in result.summary


def test_log_finding_whose_cause_is_gone_only_warns(tmp_path):
    """After `doctor --fix` repaired the schema, the RAI API's `no such column` from before is no failure."""
    logs, url = tmp_path / "home" / "logs", database_at_head(tmp_path)
    logs.mkdir(parents=True)
    (logs / "rai_api.log").write_text(
        "[raictl 2025-04-05 10:00:00.000] started pid 4242: python -m services.rai_api\n"
        + TRACEBACK.format(project="/srv/rai", file="auth.py", line=7, error=SIGNATURE_LINES["Unknown column"]))
    result = doctor(None, "logs.rai_api", "db.schema", home=str(tmp_path / "home"), database_url=url)
    assert result["db.schema"].status == "ok", show(result)
    assert result["logs.rai_api"].status == "warn" and "fixed since (db.schema passes now)" in \
        result["logs.rai_api"].summary, show(result)
    run_sql(url, "ALTER TABLE users DROP COLUMN remembered_facts")
    again = doctor(None, "logs.rai_api", home=str(tmp_path / "home"), database_url=url)["logs.rai_api"]
    assert again.status == "fail" and "users.remembered_facts" in again.summary

# ------------------------------------------------------------------ runner and settings

def test_a_hung_check_times_out_and_a_crashed_check_fails_with_its_step():
    release = threading.Event()

    def hangs(ctx):
        ctx.doing("waiting for an answer that never comes")
        release.wait(30)
        return ctx.ok("never")

    def crashes(ctx):
        ctx.doing("dividing")
        return 1 // 0

    checks = [Check("t.hang", "hangs", hangs, timeout=0.3), Check("t.crash", "crashes", crashes),
              Check("t.fine", "fine", lambda ctx: ctx.ok("fine"))]
    try:
        hung, crashed, fine = run_checks(checks=checks, context=Context(load_settings()))
    finally:
        release.set()
    assert hung.status == "fail" and hung.summary == "timed out after 0.3 s while waiting for an answer that never comes"
    assert crashed.status == "fail" and "while dividing: ZeroDivisionError" in crashed.summary
    assert crashed.details[-1].startswith(f"{__file__}:") and "in crashes: return 1 // 0" in crashed.details[-1]
    assert "raictl doctor -v t.crash" in crashed.hint
    assert fine.status == "ok"


def test_settings_that_do_not_load(monkeypatch):
    monkeypatch.setenv("RAI_API_PORT", "abc")
    results = {r.id: r for r in run_checks(["config.settings", "rai_api.running", "host"], make_context())}
    assert results["config.settings"].status == "fail" and "RAI_API_PORT" in results["config.settings"].summary
    assert results["rai_api.running"].status == "skip"
    assert results["host.ipv6_loopback"].status in ("ok", "fail")  # host checks need no settings: they ran


def test_stray_env_file_is_named(isolated):
    """Log step 21: the key sat in RAI_Chat/Backend/.env, which the server never read."""
    (isolated / "raictl.toml").write_text("")
    stray = isolated / "RAI_Chat" / "Backend"
    stray.mkdir(parents=True)
    (stray / ".env").write_text("GEMINI_API_KEY=AIzaSyD-STRAY-0000000000000000000000\n")
    result = doctor(isolated, "config.env_file")["config.env_file"]
    assert result.status == "warn" and str(stray / ".env") in result.summary and "NOT read" in result.summary
    (isolated / ".env").write_text("GEMINI_KEY=x\n")
    typo = doctor(isolated, "config.env_file")["config.env_file"]
    assert typo.status == "warn" and "GEMINI_KEY (did you mean GEMINI_API_KEY?)" in typo.summary


def test_entry_module_that_cannot_be_imported(tmp_path):
    """Log steps 12-16: `ModuleNotFoundError: No module named 'llm_Engine'` in the interpreter that runs it."""
    from raictl.doctor.checks.imports import import_entry
    from raictl.supervisor.spec import ServiceSpec

    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("from brokenpkg import server\n")
    (pkg / "server.py").write_text("import json\nfrom llm_Engine.config import settings\n")
    spec = ServiceSpec("broken", (sys.executable, "-m", "brokenpkg"), env={"PYTHONPATH": str(tmp_path)})
    verdict = import_entry(spec, load_settings())
    assert not verdict["ok"] and verdict["problems"] == [["brokenpkg.server", "llm_Engine.config",
                                                          "No module named 'llm_Engine.config'"]]
    (pkg / "server.py").write_text("import json\n")
    assert import_entry(spec, load_settings())["ok"]
    missing = import_entry(ServiceSpec("gone", (sys.executable, "-m", "no_such_entry")), load_settings())
    assert not missing["ok"] and "No module named 'no_such_entry'" in missing["problems"][0][2]


def test_import_probe_in_a_site_packages_layout(tmp_path):
    """Installed with `pip install .`, the project sits in site-packages beside its dependencies: the probe
    walks only the project's packages, and a dependency's namespace subpackage is no crash."""
    from raictl.doctor.checks.imports import import_entry
    from raictl.supervisor.spec import ServiceSpec

    site = tmp_path / "site-packages"
    for folder in ("app", "dep", "dep/sub"):
        (site / folder).mkdir(parents=True)
    (site / "app" / "__init__.py").write_text("")
    (site / "app" / "__main__.py").write_text("import dep.sub.mod\nfrom app import server\n")
    (site / "app" / "server.py").write_text("import json\n")
    (site / "dep" / "__init__.py").write_text("import never_walked_dependency_import\n")  # not ours: not walked
    (site / "dep" / "sub" / "mod.py").write_text("")  # dep/sub has no __init__.py: a namespace portion
    spec = ServiceSpec("app", (sys.executable, "-m", "app"), env={"PYTHONPATH": str(site)})
    verdict = import_entry(spec, load_settings())
    assert verdict["ok"] and verdict["checked"] == 3, verdict  # app/__main__.py, app/__init__.py, app/server.py
    (site / "app" / "server.py").write_text("import app_gone\n")
    broken = import_entry(spec, load_settings())
    assert broken["problems"] == [["app.server", "app_gone", "No module named 'app_gone'"]]

def test_an_llm_api_that_accepts_and_never_answers(child, tmp_path):
    """The RAI API runs and calls an LLM API port where connections are accepted and never answered."""
    db, llm_port, rai_port = database_at_head(tmp_path), free_port(), free_port()
    child(SILENT, llm_port, port=llm_port)
    rai = start_service("services.rai_api", tmp_path / "rai", rai_port, RAI_DATABASE_URL=db,
                        RAI_API_PORT=str(rai_port), LLM_API_PORT=str(llm_port))
    try:
        r = doctor(None, database_url=db, rai_api_port=rai_port, llm_api_port=llm_port)
    finally:
        rai.stop()
    assert r["llm_api.health"].status == "fail" and "sent no answer" in r["llm_api.health"].summary, show(r)
    assert r["rai_api.health"].status == "warn" and "llm_status=unreachable" in r["rai_api.health"].summary
    assert r["wiring.live"].status == "fail" and r["e2e.chat"].status == "skip"


def test_throw_away_user_is_removed_with_its_rows(db_url):
    """e2e.chat's clean-up (there is no delete-user endpoint): the user, its sessions and messages go."""
    from raictl.doctor.checks.e2e import delete_user

    command.upgrade(alembic_config(db_url), "head")
    run_sql(db_url, "INSERT INTO users (username, password_hash) VALUES ('doctor-abc', 'x'), ('alice', 'y')",
            "INSERT INTO chat_sessions (id, user_id) SELECT 's1', id FROM users WHERE username = 'doctor-abc'",
            "INSERT INTO messages (session_id, role, content) VALUES ('s1', 'user', 'hi')")
    assert delete_user(db_url, "doctor-abc") == 1
    left = with_connection(db_url, lambda conn: [conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar()
                                                 for t in ("users", "chat_sessions", "messages")])
    assert left == [1, 0, 0]


FAKE_LLM_API = """
import http.server, json, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "ok", "service": "llm-api", "engine": "mock", "model": "mock",
                           "fallback_reason": None, "last_error": None}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_end_to_end_names_the_failing_endpoint(child, tmp_path):
    """Log steps 29-30: the API answers, but a request fails on a column the database lacks."""
    db, llm_port, rai_port = database_at_head(tmp_path), free_port(), free_port()
    run_sql(db, "ALTER TABLE users DROP COLUMN remembered_facts")
    child(FAKE_LLM_API, llm_port, port=llm_port)
    home = tmp_path / "rai"
    rai = start_service("services.rai_api", home, rai_port, RAI_DATABASE_URL=db, RAI_API_PORT=str(rai_port),
                        LLM_API_URL=f"http://127.0.0.1:{llm_port}")
    try:
        r = doctor(None, "e2e", "rai_api.health", "db.schema", database_url=db, rai_api_port=rai_port,
                   llm_api_port=llm_port)
    finally:
        rai.stop()
    e2e = r["e2e.chat"]
    assert e2e.status == "fail" and re.match(r"POST /api/\S+ answered HTTP [45]\d\d: \{", e2e.summary), show(r)
    # The error body names the problem and its fix, never a column (issue 13); doctor's schema check names it.
    assert "schema_mismatch" in e2e.summary and "migrate --repair" in e2e.summary, show(r)
    assert "remembered_facts" not in e2e.summary and "raictl logs rai_api" in e2e.hint
    assert r["db.schema"].status == "fail" and "remembered_facts" in r["db.schema"].summary, show(r)
    assert r["rai_api.health"].status == "warn" and "schema=drift" in r["rai_api.health"].summary

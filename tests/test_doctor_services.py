"""Doctor on extra `[services.NAME]` services of raictl.toml, with real processes: the per-service checks
made from the same templates as the built-ins', and `--fix` restarting a service that crash-looped to fatal.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from raictl.supervisor.probes import probe_listen
from tests.doctor_support import doctor, doctor_json, raictl, show, write_stack_folder
from tests.supervisor_support import served
from tests.support import free_port, wait_until

# Exits at once (code 3) until its READY_FILE exists; then serves GET /ok on both loopbacks at $PORT.
FLAKY = served("""import sys
if not os.path.exists(os.environ["READY_FILE"]):
    print("boom: the ready file is missing", flush=True)
    sys.exit(3)""", path="/ok")
# Serves GET /ok with 404 (SimpleHTTPRequestHandler finds no such file) on 127.0.0.1 only.
IPV4_ONLY = """
import http.server, sys
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def table(name: str, script: str, **keys) -> str:
    lines = [f"[services.{name}]", f"command = ['python', '-c', '''{textwrap.dedent(script)}''']"]
    for key, value in keys.items():
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def child():
    procs = []

    def start(script: str, port: int):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_until(lambda: proc.poll() is None and probe_listen("127.0.0.1", port).ok, what=f"child on {port}")
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_fix_restarts_a_service_that_crash_looped_to_fatal(tmp_path):
    """A crash loop ends `fatal`; once its cause is gone, `doctor --fix` restarts it and the checks pass."""
    ready, port = tmp_path / "ready", free_port()
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port(), toml='engine = "mock"\n' + table(
        "flaky", FLAKY, port=port, health='"/ok"', env=f'{{ READY_FILE = "{ready}" }}'))
    try:
        assert raictl(folder, "up", "flaky").returncode == 1
        before = doctor(folder, "flaky", "logs.flaky")
        running = before["flaky.running"]
        assert running.status == "fail" and "gave up after repeated crashes" in running.summary, show(before)
        assert "last exit: exited with code 3" in running.summary and "raictl restart flaky" in running.hint
        assert any("boom: the ready file is missing" in line for line in running.details)
        ready.write_text("")  # the cause removed
        fixed = raictl(folder, "doctor", "--fix", "--yes", "flaky")
        plan, applied = fixed.stderr.index("• start or restart flaky"), fixed.stderr.index("restarted flaky")
        assert plan < applied, fixed.stderr  # listed before it ran
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        after = doctor(folder, "flaky")
        assert {r.status for r in after.values()} == {"ok"}, show(after)
        assert f"http://127.0.0.1:{port}/ok: HTTP 200" in after["flaky.health"].summary
    finally:
        raictl(folder, "down")


def test_extra_service_gets_the_per_service_checks_that_apply(tmp_path, child):
    port = free_port()
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port(), toml=(
        table("web", "pass", port=port, health='"/ok"')
        + "[services.worker]\ncommand = ['python', '-m', 'no_such_worker_module']\n"))
    ids = list(doctor(folder))
    assert ids.index("imports.rai_api") + 1 == ids.index("imports.worker")  # after the built-ins of its group
    assert "imports.web" not in ids  # `python -c`: no entry module to resolve
    assert [i for i in ids if i.startswith("web.")] == ["web.running", "web.port", "web.listen.ipv4",
                                                        "web.listen.ipv6", "web.localhost", "web.health"]
    assert [i for i in ids if i.startswith("worker.")] == ["worker.running"]  # no port: nothing to probe
    assert ids[-3:] == ["logs.rai_api", "logs.web", "logs.worker"]
    proc = child(IPV4_ONLY, port)
    r = doctor(folder, "web", "imports.worker")
    assert r["web.listen.ipv4"].status == "ok", show(r)
    assert r["web.listen.ipv6"].status == "fail" and "it listens only on 127.0.0.1" in r["web.listen.ipv6"].summary
    assert r["web.listen.ipv6"].hint.startswith("[services.web] lists ::1, but its command does not listen there")
    assert r["web.port"].status == "fail" and f"kill {proc.pid}" in r["web.port"].hint
    assert r["web.health"].status == "fail" and f"http://127.0.0.1:{port}/ok answers HTTP 404" in r["web.health"].summary
    assert r["web.running"].status == "fail" and r["web.running"].hint == "raictl up web"
    assert r["imports.worker"].status == "fail" and "no_such_worker_module" in r["imports.worker"].summary



def test_a_bad_services_table_is_one_finding(tmp_path):
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port(),
                                toml="[services.bad]\ncommand = ['python', '-c', 'pass']\nport = 'abc'\n")
    r = doctor(folder)
    assert r["config.services"].status == "fail" and "services.bad.port" in r["config.services"].summary, show(r)
    assert [i for i, x in r.items() if x.status == "fail"] == ["config.services"], show(r)
    assert r["rai_api.running"].status == "skip" and "see config.services" in r["rai_api.running"].summary


def test_imports_are_resolved_where_up_runs_the_service_not_in_the_current_folder(tmp_path):
    """Doctor run from a subfolder of the project resolves a service's entry module in raictl.toml's
    folder, where `raictl up` starts it (`python -m` looks in its cwd first)."""
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port(),
                                toml="[services.worker]\ncommand = ['python', '-m', 'localworker']\n")
    (folder / "localworker").mkdir()
    (folder / "localworker" / "__init__.py").write_text("")
    (folder / "localworker" / "__main__.py").write_text("from localworker import jobs\n")
    (folder / "localworker" / "jobs.py").write_text("import json\n")
    sub = folder / "docs" / "notes"
    sub.mkdir(parents=True)
    code, document = doctor_json(sub, "imports.worker")
    worker = {c["id"]: c for c in document["checks"]}["imports.worker"]
    assert code == 0 and worker["status"] == "ok", worker
    assert "localworker" in worker["summary"]

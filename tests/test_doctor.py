"""raictl doctor on a healthy, supervised stack (both real services, Gemini via the fake), the CLI, and --fix."""

from __future__ import annotations

import json
import os
import signal
import stat
import uuid

import pytest

from raictl.doctor import registered_checks
from tests.doctor_support import cli_env, doctor, doctor_json, raictl, show, write_stack_folder
from tests.support import free_port, processes_with_marker, wait_until

KEY = "AIzaSyD-DOCTOR-0123456789abcdefghijklm"


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """A stack started by `raictl up` from a folder with raictl.toml and a .env holding a (fake) Gemini key."""
    from tests.fake_gemini import FakeGemini

    marker = f"doctor-healthy-{uuid.uuid4().hex}"  # module-scoped: checked here, not by the per-test fixture
    with FakeGemini() as fake:
        folder = write_stack_folder(tmp_path_factory.mktemp("doctor-healthy"), free_port(), free_port(),
                                    dotenv=f"GEMINI_API_KEY={KEY}\nGEMINI_BASE_URL={fake.base_url}\n")
        env = cli_env(marker)
        up = raictl(folder, "up", env=env)
        try:
            assert up.returncode == 0, up.stderr
            yield folder
        finally:
            raictl(folder, "down", env=env)
            assert not processes_with_marker(marker)


def test_healthy_stack_is_all_ok(healthy):
    results = doctor(healthy)
    assert {r.status for r in results.values() if r.id != "llm.openai"} == {"ok"}, show(results)
    assert results["llm.openai"].status == "skip"  # Gemini serves: no OpenAI-compatible server to check
    assert [r.id for r in results.values()] == [c.id for c in registered_checks()]  # stable order, all ran
    assert KEY not in show(results) and "AIza…jklm" in results["llm.gemini"].summary
    assert "e2e.chat" in results and "cleaned up" in results["e2e.chat"].summary


def test_cli_json_document_and_exit_code(healthy):
    code, document = doctor_json(healthy)
    assert code == 0 and document["ok"] is True
    assert {tuple(sorted(c)) for c in document["checks"]} == {
        ("duration_ms", "hint", "id", "status", "summary", "title")}
    assert KEY not in json.dumps(document)


def test_selection_by_id_prefix_and_unknown_selector(healthy):
    code, document = doctor_json(healthy, "rai_api.listen", "db")
    assert [c["id"] for c in document["checks"]] == ["rai_api.listen.ipv4", "rai_api.listen.ipv6",
                                                     "db.reachable", "db.revision", "db.schema"]
    listed = [line.split()[0] for line in raictl(healthy, "doctor", "--list").stdout.splitlines()]
    assert listed == [c.id for c in registered_checks()]
    unknown = raictl(healthy, "doctor", "rai")
    assert unknown.returncode == 2 and "no doctor check matches rai" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    typo = raictl(healthy, "doctor", "db.shema")
    assert typo.returncode == 2 and "did you mean db.schema?" in typo.stderr, typo.stderr


def test_human_output_has_marks_and_a_summary(healthy):
    done = raictl(healthy, "doctor", "-v", "config", "host")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[✓] config.settings" in done.stdout and "No issues found!" in done.stdout
    assert f"GEMINI_API_KEY = AIza…jklm ({len(KEY)} chars)  [.env (GEMINI_API_KEY)]" in done.stdout
    assert KEY not in done.stdout


def test_fix_starts_a_stopped_service_then_sigkill_is_reported(tmp_path):
    """--fix lists and applies `raictl up llm_api`; a kill -9 (log step 12) then shows as SIGKILL."""
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port(), toml='engine = "mock"\n')
    before = doctor(folder, "llm_api.running")
    assert before["llm_api.running"].status == "fail" and before["llm_api.running"].hint == "raictl up llm_api"
    try:
        done = raictl(folder, "doctor", "--fix", "--yes", "llm_api")
        assert "start or restart llm_api" in done.stderr and "started llm_api" in done.stderr, done.stderr
        assert done.returncode == 0, done.stdout + done.stderr
        pid = doctor(folder, "llm_api.running")["llm_api.running"].summary.split("pid ")[1].split(",")[0]
        os.kill(int(pid), signal.SIGKILL)
        after = wait_until(lambda: (r := doctor(folder, "llm_api.running", "logs.llm_api"))["llm_api.running"]
                           .summary.startswith("running") and "1 restart;" in r["llm_api.running"].summary and r,
                           timeout=20, what="llm_api restarted after SIGKILL")
        assert after["llm_api.running"].status == "warn" and "killed by SIGKILL" in after["llm_api.running"].summary
        assert after["logs.llm_api"].status == "warn" and "killed by SIGKILL" in after["logs.llm_api"].summary
    finally:
        raictl(folder, "down")


def test_fix_writes_a_private_env_template(tmp_path):
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port())
    assert doctor(folder, "config.env_file")["config.env_file"].status == "skip"
    done = raictl(folder, "doctor", "--fix", "config.env_file")
    assert "write a commented .env template" in done.stderr, done.stderr
    assert stat.S_IMODE((folder / ".env").stat().st_mode) == 0o600
    assert "# GEMINI_API_KEY=" in (folder / ".env").read_text()
    assert doctor(folder, "config.env_file")["config.env_file"].status == "ok"


def test_fix_repairs_a_missing_column_after_asking(tmp_path):
    """Log step 29's missing column: --fix offers `migrate --repair`, asks, and repairs only on yes."""
    import sqlalchemy as sa
    from alembic import command

    from migrations import alembic_config

    folder = write_stack_folder(tmp_path / "s", free_port(), free_port())
    url = f"sqlite:///{folder / 'home' / 'rai.db'}"
    (folder / "home").mkdir()
    command.upgrade(alembic_config(url), "head")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE users DROP COLUMN remembered_facts")
    engine.dispose()
    declined = raictl(folder, "doctor", "--fix", "db", input="n\n")
    assert declined.returncode == 1 and "skipped (not confirmed" in declined.stderr, declined.stderr
    assert doctor(folder, "db.schema")["db.schema"].status == "fail"
    unanswered = raictl(folder, "doctor", "--fix", "--json", "db", input="")  # stdin closed: a no
    assert unanswered.returncode == 1 and "skipped (not confirmed" in unanswered.stderr, unanswered.stderr
    document = json.loads(unanswered.stdout)  # still exactly one JSON document on stdout
    assert unanswered.stdout.startswith("{"), unanswered.stdout[:20]  # the question left nothing there
    assert [c["status"] for c in document["checks"] if c["id"] == "db.schema"] == ["fail"]
    accepted = raictl(folder, "doctor", "--fix", "db", input="y\n")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "database repaired" in accepted.stderr and "remembered_facts" in accepted.stderr
    assert accepted.stderr.count("• repair the database") == 1  # listed once, before it runs
    assert doctor(folder, "db.schema")["db.schema"].status == "ok"

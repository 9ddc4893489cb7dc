"""Doctor on settings that load yet defeat the user: a wildcard or one-loopback binding, typos and wrong
types in raictl.toml, a malformed LLM_API_URL, a .env that is not the one read or that does not parse,
and a service of another raictl home on our ports. Real `raictl` runs, real sockets, no stand-ins.
"""

from __future__ import annotations

import json

import pytest

from raictl.doctor.checks.wiring import who_answers
from raictl.supervisor.probes import probe_listen
from tests.doctor_support import (
    cli_env,
    doctor,
    doctor_json,
    raictl,
    show,
    write_stack_folder,
)
from tests.support import free_port

KEY = "AIzaSyD-CONFIG-0123456789abcdefghijklmn"


# ------------------------------------------------------------------ addresses (the log's root cause)

def test_rai_api_bound_to_0_0_0_0_is_a_failure_naming_the_consequences(tmp_path):
    """The tester's repro: `RAI_API_HOSTS=0.0.0.0 raictl up; raictl doctor rai_api` said "No issues found"."""
    rai_port = free_port()
    folder = write_stack_folder(tmp_path / "s", free_port(), rai_port, toml='engine = "mock"\n')
    env = cli_env(RAI_API_HOSTS="0.0.0.0")
    up = raictl(folder, "up", env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert not probe_listen("::1", rai_port).ok  # the consequence is real: [::1]:P is refused
        code, document = doctor_json(folder, "rai_api", env=env)
    finally:
        raictl(folder, "down", env=env)
    checks = {c["id"]: c for c in document["checks"]}
    assert code == 1 and document["ok"] is False, checks
    v6, v4 = checks["rai_api.listen.ipv6"], checks["rai_api.listen.ipv4"]
    assert v6["status"] == "fail", checks
    assert v6["summary"].startswith("RAI_API_HOSTS=0.0.0.0 binds 0.0.0.0, which takes IPv4 only")
    assert "ECONNREFUSED ::1" in v6["summary"] and "exposes the API to the network" in v6["summary"]
    assert v4["status"] == "fail" and "exposes the API to the network" in v4["summary"], checks
    for finding in (v4, v6):
        assert "RAI_API_HOSTS=127.0.0.1,::1" in finding["hint"] and "raictl restart rai_api" in finding["hint"]


@pytest.mark.parametrize("hosts,check,status,words", [
    ("::", "ipv4", "fail", "RAI_API_HOSTS=:: binds ::, which takes IPv6 only (waitress sets IPV6_V6ONLY)"),
    ("::", "ipv6", "fail", "RAI_API_HOSTS=:: binds ::, every IPv6 interface: it exposes the API"),
    ("::0", "ipv4", "fail", "RAI_API_HOSTS=::0 binds ::0, which takes IPv6 only (waitress sets IPV6_V6ONLY)"),
    ("::0", "ipv6", "fail", "RAI_API_HOSTS=::0 binds ::0, every IPv6 interface: it exposes the API"),
    ("0.0.0.0,::1", "ipv4", "fail", "binds 0.0.0.0, every IPv4 interface: it exposes the API to the network"),
    ("127.0.0.1", "ipv6", "warn", "RAI_API_HOSTS=127.0.0.1 leaves ::1 out"),
    ("::1", "ipv4", "warn", "RAI_API_HOSTS=::1 leaves 127.0.0.1 out"),
])
def test_addresses_that_leave_a_loopback_unserved_are_found_from_the_settings(hosts, check, status, words):
    """Running or not: the setting itself is the finding (before `raictl up` makes it a refused connection)."""
    r = doctor(None, "rai_api.listen", rai_api_hosts=hosts, rai_api_port=free_port(), llm_api_port=free_port())
    finding = r[f"rai_api.listen.{check}"]
    assert finding.status == status and words in finding.summary, show(r)
    assert finding.hint.startswith("bind both loopbacks, the default: RAI_API_HOSTS=127.0.0.1,::1")
    other = r[f"rai_api.listen.{'ipv6' if check == 'ipv4' else 'ipv4'}"]
    if hosts in ("127.0.0.1", "::1", "0.0.0.0,::1"):  # the loopback that is listed is probed as before
        assert other.status == "skip" and "not running" in other.summary, show(r)


def test_default_addresses_raise_no_finding():
    r = doctor(None, "llm_api.listen", llm_api_port=free_port(), rai_api_port=free_port())
    assert [x.status for x in r.values()] == ["skip", "skip"], show(r)


# ------------------------------------------------------------------ raictl.toml

def test_typos_in_raictl_toml_are_named_with_a_suggestion(tmp_path):
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port(),
                                toml="prot = 1\n[rai-api]\nport = 17150\n[gemini]\nmodle = \"x\"\n")
    r = doctor(folder, "config.settings")
    result = r["config.settings"]
    assert result.status == "warn", show(r)
    for named in ("llm_api.prot (did you mean llm_api.port?)", "rai-api (did you mean rai_api?)",
                  "gemini.modle (did you mean gemini.model?)"):
        assert named in result.summary, show(r)
    assert str(folder / "raictl.toml") in result.summary and "[rai_api] port/hosts" in result.hint
    (folder / "raictl.toml").write_text('home = "h"\nport = 7001\n')  # a table's key above every table
    top = doctor(folder, "config.settings")["config.settings"]
    assert "port (did you mean rai_api.port or llm_api.port?)" in top.summary, top


def test_a_value_of_the_wrong_type_is_one_clear_line(tmp_path):
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port(), toml="")
    (folder / "raictl.toml").write_text((folder / "raictl.toml").read_text().replace('home = "home"',
                                                                                      'home = "home"\ndatabase_url = 5'))
    code, document = doctor_json(folder, "config.settings")
    settings = document["checks"][0]
    assert code == 1 and settings["status"] == "fail", settings
    assert f"{folder / 'raictl.toml'}: database_url must be a string (text in quotes), got 5" in settings["summary"]
    assert settings["hint"] == 'fix it in raictl.toml, e.g. database_url = "..."'
    status = raictl(folder, "status")
    assert "database_url must be a string" in status.stderr and "Traceback" not in status.stderr


# ------------------------------------------------------------------ LLM_API_URL

def test_a_malformed_llm_api_url_is_a_settings_error_not_a_crashed_check(tmp_path):
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port())
    code, document = doctor_json(folder, env=cli_env(LLM_API_URL="notaurl"))
    checks = {c["id"]: c for c in document["checks"]}
    assert code == 1 and checks["config.settings"]["status"] == "fail"
    assert "LLM_API_URL must be an http:// or https:// URL with a host, got 'notaurl'" in checks["config.settings"]["summary"]
    assert "LLM_API_URL=http://127.0.0.1:6301" in checks["config.settings"]["hint"]
    assert not [c for c in checks.values() if "crashed" in c["summary"]], checks
    # A RAI API started before the URL was checked may still report one: the wiring check says so, no crash.
    assert who_answers("notaurl") == "not an http:// URL"


# ------------------------------------------------------------------ .env

def test_a_dotenv_in_the_current_folder_that_is_not_read_warns_naming_both(tmp_path):
    """The log's step 21: the key sat in a .env raictl did not read; doctor said `✓ loaded` the other one."""
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port(), dotenv="LLM_ENGINE=mock\n")
    sub = folder / "RAI_Chat" / "Backend"
    sub.mkdir(parents=True)
    (sub / ".env").write_text(f"GEMINI_API_KEY={KEY}\nUNRELATED=1\n")
    done = raictl(sub, "doctor", "config.env_file")
    assert done.returncode == 0 and "[!] config.env_file" in done.stdout, done.stdout + done.stderr
    line = " ".join(done.stdout.split())  # rich wraps long lines
    assert f"{sub / '.env'} sets GEMINI_API_KEY but is NOT read" in line
    assert f"raictl reads {folder / '.env'}" in line and KEY not in done.stdout
    (sub / ".env").write_text("NODE_ENV=development\n")  # sets nothing raictl reads: not a finding
    assert doctor(sub, "config.env_file")["config.env_file"].status == "ok"


def test_a_dotenv_line_that_does_not_parse_fails_naming_file_and_line(tmp_path):
    folder = write_stack_folder(tmp_path / "s", free_port(), free_port(),
                                dotenv=f'LLM_ENGINE=mock\nGEMINI_API_KEY="{KEY}\n')
    done = raictl(folder, "doctor", "--json", "config.env_file")
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads(done.stdout)["checks"][0]
    assert result["status"] == "fail", result
    assert result["summary"].startswith(f"{folder / '.env'} line 2 (GEMINI_API_KEY is not set): "), result
    assert "close the quote" in result["hint"]
    assert "python-dotenv could not parse" not in done.stderr, done.stderr  # captured, not printed raw
    assert KEY not in done.stdout + done.stderr


# ------------------------------------------------------------------ another raictl home on our ports

def test_a_service_of_another_raictl_home_gets_the_diagnosis_up_gives(tmp_path):
    """Killing it (the old hint) only makes its own supervisor restart it: stop it from its home."""
    llm_port, rai_port = free_port(), free_port()
    theirs = write_stack_folder(tmp_path / "theirs", llm_port, free_port(), toml='engine = "mock"\n')
    ours = write_stack_folder(tmp_path / "ours", llm_port, rai_port, toml='engine = "mock"\n')
    up = raictl(theirs, "up", "llm_api")
    try:
        assert up.returncode == 0, up.stderr
        r = doctor(ours, "llm_api.running", "llm_api.port")
        refused = raictl(ours, "up", "llm_api")
    finally:
        raictl(theirs, "down")
    home = theirs / "home"
    expected = f"`RAICTL_HOME={home} raictl down` stops it"
    assert f"RAICTL_HOME={home} raictl down" in refused.stderr  # what `raictl up` says: doctor agrees
    running, port = r["llm_api.running"], r["llm_api.port"]
    assert running.status == "warn" and f"of RAICTL_HOME={home}" in running.summary, show(r)
    assert expected in running.hint and "kill " not in running.hint, show(r)
    assert port.status == "warn" and f"a service of another raictl home (RAICTL_HOME={home})" in port.summary, show(r)
    assert expected in port.hint and "kill " not in port.hint, show(r)

"""`raictl migrate` through the real console script, and the incident's end: the old user logs in and chats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command

from migrations import alembic_config
from tests.migrate_support import HEAD, UNKNOWN, differences_from_models, dump, rows, sql, the_incident
from tests.support import ServiceProcess, free_port, http, service_env, wait_until

RAICTL = str(Path(sys.executable).with_name("raictl"))


def raictl(url, *args, stdin=subprocess.DEVNULL):
    """Run the installed `raictl` with RAI_DATABASE_URL=url; stdin is not a terminal."""
    env = dict(os.environ, RAI_DATABASE_URL=url)
    done = subprocess.run([RAICTL, *args], env=env, stdin=stdin, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_migrate_refuses_the_incident_with_one_line_and_the_hint(db_url):
    the_incident(db_url)
    done = raictl(db_url, "migrate")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: alembic_version holds revision '{UNKNOWN}', which is not among the migration scripts",
        "hint: raictl migrate --repair"]


@pytest.mark.parametrize("args", [("--json",), ("--dry-run", "--json")])
def test_migrate_json_refusal_says_where_the_database_stands(sqlite_url, args):
    the_incident(sqlite_url)
    done = raictl(sqlite_url, "migrate", *args)
    document = json.loads(done.stdout)
    assert done.returncode == 1 and (document["before"], document["after"]) == (UNKNOWN, UNKNOWN)
    assert document["refused"] == [document["error"]["message"]] and document["error"]["hint"] == "raictl migrate --repair"
    assert document["dry_run"] == ("--dry-run" in args) and "error: alembic_version holds" in done.stderr


def test_repair_without_a_terminal_needs_yes_and_changes_nothing(db_url):
    the_incident(db_url)
    before = dump(db_url)
    done = raictl(db_url, "migrate", "--repair")
    assert done.returncode == 1 and "stdin is not a terminal" in done.stderr and "--yes" in done.stderr
    assert dump(db_url) == before


def test_dry_run_json_then_repair_json_then_nothing_to_do(db_url):
    the_incident(db_url)
    before = dump(db_url)
    planned = json.loads(raictl(db_url, "migrate", "--repair", "--dry-run", "--json").stdout)
    assert set(planned) == {"before", "after", "actions", "refused", "extras", "backup", "dry_run"}
    assert (planned["before"], planned["after"]) == (UNKNOWN, UNKNOWN)
    assert (planned["dry_run"], planned["backup"]) == (True, None)
    assert [set(a) for a in planned["actions"]] == [{"kind", "detail", "sql"}] * 2
    assert dump(db_url) == before

    done = raictl(db_url, "migrate", "--repair", "--yes", "--json")
    applied = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert (applied["before"], applied["after"], applied["dry_run"]) == (UNKNOWN, HEAD, False)
    assert applied["actions"] == planned["actions"] and Path(applied["backup"]).is_file()
    assert differences_from_models(db_url) == []

    again = raictl(db_url, "migrate", "--repair")
    assert again.returncode == 0 and "nothing to do" in again.stdout and f"after: {HEAD}" in again.stdout


def test_plain_migrate_upgrades_and_prints_before_and_after(db_url):
    command.upgrade(alembic_config(db_url), "0001_initial")
    before = dump(db_url)
    planned = json.loads(raictl(db_url, "migrate", "--dry-run", "--json").stdout)
    assert [a["kind"] for a in planned["actions"]] == ["upgrade"]
    assert "remembered_facts" in planned["actions"][0]["sql"]
    assert dump(db_url) == before
    done = raictl(db_url, "migrate")
    assert done.returncode == 0, done.stderr
    assert "before: 0001_initial" in done.stdout and f"after: {HEAD}" in done.stdout
    assert "ADD COLUMN remembered_facts" in done.stdout


def test_a_fresh_checkout_migrates_before_its_home_exists(tmp_path):
    """No RAI_DATABASE_URL and no <home> yet (a new user runs `raictl migrate` before `raictl up`)."""
    home = tmp_path / "fresh" / ".raictl"
    env = {k: v for k, v in os.environ.items() if k != "RAI_DATABASE_URL"}
    for dry in (("--dry-run",), ("--repair", "--dry-run")):  # a plan leaves no trace: no folder, no file
        done = subprocess.run([RAICTL, "migrate", *dry], env=dict(env, RAICTL_HOME=str(home)),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "upgrade: upgrade " in done.stdout and f"-> {HEAD}" in done.stdout, done.stderr
        assert not (tmp_path / "fresh").exists()
    done = subprocess.run([RAICTL, "migrate", "--json"], env=dict(env, RAICTL_HOME=str(home)),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["after"] == HEAD
    assert differences_from_models(f"sqlite:///{home / 'rai.db'}") == []


@pytest.mark.parametrize("url", ["postgresql://rai:s3cret-pw@127.0.0.1/rai", "foo://rai:s3cret-pw@127.0.0.1/rai",
                                 "not a url at all", "mysql+pymysql://rai:s3cret-pw@127.0.0.1:notaport/rai",
                                 "mysql+pymysql://rai:s3cret-pw@[::1/rai", "mysql+mysqldb://rai:s3cret-pw@127.0.0.1/rai",
                                 "mysql+nosuchdriver://rai:s3cret-pw@127.0.0.1/rai", "sqlite+pysqlcipher:///rai.db"])
@pytest.mark.parametrize("args", [("migrate",), ("migrate", "--repair", "--dry-run"), ("migrate", "--repair", "--yes")])
def test_an_unsupported_database_url_is_one_line(url, args):
    done = raictl(url, *args)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: RAI_DATABASE_URL ") and len(done.stderr.splitlines()) == 2
    assert "s3cret-pw" not in done.stderr


def _server(mysql_url, **parts):
    import sqlalchemy as sa

    return sa.make_url(mysql_url).set(**parts).render_as_string(hide_password=False)


@pytest.mark.mysql
@pytest.mark.parametrize("case, words, hint", [
    ("wrong password", "Access denied", "check the user name and password in RAI_DATABASE_URL"),
    ("unknown database", "Unknown database", "create the database (CREATE DATABASE"),
    ("nothing listening", "Can't connect", "start the database server, or fix the host and port"),
])
def test_mysql_connection_failures_are_one_line_with_what_to_do(mysql_url, case, words, hint):
    url = {"wrong password": _server(mysql_url, password="Wr0ng-s3cret"),
           "unknown database": _server(mysql_url, database="rai_no_such_db"),
           "nothing listening": _server(mysql_url, password="Wr0ng-s3cret", port=free_port())}[case]
    for args in (("migrate",), ("migrate", "--repair", "--yes"), ("migrate", "--repair", "--dry-run")):
        done = raictl(url, *args)
        assert done.returncode == 1 and done.stdout == "", done.stderr
        message, hint_line = done.stderr.splitlines()
        assert message.startswith("error: reading the schema on mysql+pymysql://") and words in message
        assert hint_line.startswith(f"hint: {hint}") and "Wr0ng-s3cret" not in done.stderr


def test_a_file_that_is_not_a_database_is_named_and_left_untouched(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("my notes, not a database\n")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for path, hint in ((text, "must name a SQLite database file"), (folder, "must name a file (not a folder)")):
        done = raictl(f"sqlite:///{path}", "migrate", "--repair", "--yes")
        assert done.returncode == 1 and len(done.stderr.splitlines()) == 2, done.stderr
        assert str(path) in done.stderr and hint in done.stderr
    assert text.read_text() == "my notes, not a database\n" and list(folder.iterdir()) == []


def test_a_read_only_sqlite_database_fails_in_one_line_after_a_real_backup(sqlite_url, tmp_path, isolated):
    """A `file:` URI opened mode=ro: nothing is written, the backup holds the rows, no stray `file:` folder."""
    command.upgrade(alembic_config(sqlite_url), "0001_initial")
    sql(sqlite_url, "INSERT INTO users (id, username, password_hash) VALUES (1, 'old', 'h')")
    before = dump(sqlite_url)
    read_only = f"sqlite:///file:{sqlite_url[len('sqlite:///'):]}?mode=ro&uri=true"
    done = raictl(read_only, "migrate")
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 2, done.stderr
    assert "attempt to write a readonly database" in done.stderr and "make the file and its folder writable" in done.stderr
    assert dump(sqlite_url) == before and not (isolated / "file:").exists()
    backup = done.stderr.split("backup: ")[1].split(";")[0]
    assert rows(f"sqlite:///{backup}", "users", "username") == [("old",)]


@pytest.mark.parametrize("url, args", [
    ("mysql+pymysql://rai:Wr0ng-s3cret@127.0.0.1:1/rai", ("--repair", "--yes")),
    ("mysql+pymysql://rai:Wr0ng-s3cret@127.0.0.1:1/rai", ("--dry-run", "--yes")),
    ("postgresql://rai:Wr0ng-s3cret@127.0.0.1/rai", ()),
    ("sqlite:///{tmp}/notes.txt", ("--repair", "--dry-run")),
])
def test_json_failures_are_still_one_document_on_stdout(tmp_path, url, args):
    (tmp_path / "notes.txt").write_text("not a database")
    done = raictl(url.format(tmp=tmp_path).replace("1/rai", f"{free_port()}/rai"), "migrate", "--json", *args)
    assert done.returncode == 1
    document = json.loads(done.stdout)  # the whole of stdout is one document
    assert document["error"]["message"] in done.stderr and document["error"]["hint"] in done.stderr
    assert (document["actions"], document["after"], document["dry_run"]) == ([], None, "--dry-run" in args)
    assert "Wr0ng-s3cret" not in done.stdout + done.stderr


def _rai_api(home, url, llm_api):
    port = free_port()
    env = service_env(home, RAI_DATABASE_URL=url, RAI_API_PORT=str(port), RAI_API_HOSTS="127.0.0.1",
                      LLM_API_URL=llm_api.url(""), RAI_SECRET_KEY="migrate-test-secret")
    return ServiceProcess("services.rai_api", port, env, hosts=("127.0.0.1",), log=home / "rai_api.log").start()


def _login_and_chat(rai):
    status, body = http("POST", rai.url("/api/auth/login"), {"username": "before", "password": "correct horse"})
    if status != 200:
        return status, body
    return http("POST", rai.url("/api/chat"), {"message": "remember that I like tea"}, token=body["access_token"])


def test_after_the_repair_a_user_from_before_logs_in_and_chats(db_url, llm_api, tmp_path):
    """The log's step 29 end to end through the served RAI API: an account made before the incident, the
    incident, the repair run while the API keeps serving; then the same account logs in and chats."""
    command.upgrade(alembic_config(db_url), "head")
    rai = _rai_api(tmp_path, db_url, llm_api)
    try:
        status, _ = http("POST", rai.url("/api/auth/register"), {"username": "before", "password": "correct horse"})
        assert status == 201
    finally:
        rai.stop()
    command.downgrade(alembic_config(db_url), "0001_initial")
    sql(db_url, f"UPDATE alembic_version SET version_num = '{UNKNOWN}'")
    rai = _rai_api(tmp_path, db_url, llm_api)
    try:
        status, body = _login_and_chat(rai)  # the incident's symptom: every login fails on the missing column
        assert (status, body["error"]) == (503, "schema_mismatch") and "raictl migrate --repair" in body["message"], body
        assert http("GET", rai.url("/api/health"))[1]["schema"] == "unknown_revision"

        assert raictl(db_url, "migrate", "--repair", "--yes").returncode == 0
        status, body = _login_and_chat(rai)
        assert status == 200 and body["status"] == "success", body
        wait_until(lambda: http("GET", rai.url("/api/health"))[1]["schema"] == "ok", timeout=30,
                   what="the health's schema state (cached a few seconds) to say ok")
    finally:
        rai.stop()
    assert "tea" in str(rows(db_url, "users", "remembered_facts"))  # the repaired column is in use


@pytest.mark.parametrize("answer, code", [("n\n", 1), ("y\n", 0), ("\x04", 1)])  # \x04: Ctrl-D
def test_on_a_terminal_the_repair_shows_the_plan_and_asks(sqlite_url, answer, code):
    """stdin is a real pseudo-terminal here: the plan goes to stderr, then the question."""
    import pty

    the_incident(sqlite_url)
    before = dump(sqlite_url)
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode())
        done = raictl(sqlite_url, "migrate", "--repair", stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == code, done.stderr
    assert "stamp: stamp 0001_initial, replacing 3f2724846ff9" in done.stderr and "Apply these changes" in done.stderr
    if code == 1:
        assert "repair cancelled: nothing was changed" in done.stderr and dump(sqlite_url) == before
        assert "Aborted" not in done.stderr
    else:
        assert f"after: {HEAD}" in done.stdout and differences_from_models(sqlite_url) == []


def test_a_second_repair_refuses_while_the_first_holds_the_lock(db_url, tmp_path, monkeypatch):
    """Two real `raictl migrate --repair`: the first waits at its prompt holding the lock. On SQLite
    both use one home (its migrate.lock); on MariaDB the second has a home of its own, so only the
    database server's named lock can stop it (two homes or machines sharing one database)."""
    import pty

    the_incident(db_url)
    before = dump(db_url)
    master, slave = pty.openpty()
    first_err = tmp_path / "first.err"
    with open(first_err, "w") as err:
        first = subprocess.Popen([RAICTL, "migrate", "--repair"], env=dict(os.environ, RAI_DATABASE_URL=db_url),
                                 stdin=slave, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        wait_until(lambda: "Apply these changes" in first_err.read_text(), timeout=30, what="the first's prompt")
        on_server = db_url.startswith("mysql")
        if on_server:
            monkeypatch.setenv("RAICTL_HOME", str(tmp_path / "another-home"))
        second = raictl(db_url, "migrate", "--repair", "--yes")
        assert second.returncode == 1 and second.stdout == "", second.stderr
        assert second.stderr.startswith("error: another raictl migrate is changing this database")
        holder = "the database server's lock 'raictl.migrate." if on_server else "migrate.lock"
        assert holder in second.stderr and "nothing was changed" in second.stderr
        assert dump(db_url) == before
        os.write(master, b"y\n")
        assert first.wait(timeout=60) == 0, first_err.read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stdout.close()
        os.close(slave)
        os.close(master)
    again = raictl(db_url, "migrate", "--repair", "--yes")  # the first's locks went with it
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_a_home_that_is_a_file_and_an_in_memory_database_are_one_line(tmp_path):
    home = tmp_path / "home-is-a-file"
    home.write_text("not a folder")
    env = dict(os.environ, RAICTL_HOME=str(home), RAI_DATABASE_URL=f"sqlite:///{tmp_path / 'rai.db'}")
    done = subprocess.run([RAICTL, "migrate"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    assert "Traceback" not in done.stderr and done.returncode == 1
    assert done.stderr.splitlines() == [f"error: cannot take the lock {home / 'migrate.lock'}: File exists; "
                                        "nothing was changed", "hint: RAICTL_HOME must be a folder you can write"]
    for url in ("sqlite://", "sqlite:///:memory:"):
        done = raictl(url, "migrate", "--repair", "--yes")
        assert done.returncode == 1 and "an in-memory SQLite database" in done.stderr, done.stderr


@pytest.mark.mysql
def test_mysql_urls_connect_as_the_rai_api_does(mysql_url):
    """mariadb+pymysql:// is the same dialect; a charset in the URL yields to utf8mb4 (the RAI API's)."""
    done = raictl(mysql_url.replace("mysql+pymysql://", "mariadb+pymysql://") + "?charset=bogus", "migrate")
    assert done.returncode == 0 and f"after: {HEAD}" in done.stdout, done.stderr
    again = raictl(mysql_url, "migrate", "--repair", "--dry-run", "--json")
    assert json.loads(again.stdout)["actions"] == []


@pytest.mark.parametrize("query, words", [
    ("?foo=1", "RAI_DATABASE_URL has a query parameter pymysql does not take: foo"),
    ("?ssl_ca=/no/such/ca.pem", "RAI_DATABASE_URL's ssl_ca names /no/such/ca.pem, which does not exist"),
])
def test_a_url_option_pymysql_would_choke_on_is_one_line(query, words):
    """Both made pymysql raise at connect time (TypeError, FileNotFoundError): a traceback before."""
    done = raictl(f"mysql+pymysql://root@127.0.0.1:{free_port()}/rai{query}", "migrate")
    assert done.returncode == 1 and done.stderr.splitlines()[0] == f"error: {words}", done.stderr

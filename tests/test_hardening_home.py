"""Issue 13, item 9: a read-only or full home. `raictl chat` printed a traceback (`OSError: [Errno 30]
... credentials.json`), `raictl doctor` said "No issues found", and on SQLite a full disk left the WAL
holding the space.

A read-only home is a read-only tmpfs mount when this runs as root (permissions do not stop root), else
a folder without write permission; a full disk is a small tmpfs (root only).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port


def _mount(target: Path, options: str) -> None:
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    if done.returncode != 0:
        why = f"cannot mount a tmpfs here: {done.stderr.decode().strip()}"
        if os.environ.get("CI") == "true":  # CI runs as root: there the read-only and full homes must be tested
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture
def readonly_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    if os.geteuid() == 0:
        _mount(home, "ro,size=1m")
        yield home
        subprocess.run(["umount", str(home)], check=True)
    else:
        home.chmod(0o500)
        yield home
        home.chmod(0o700)


def raictl(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAICTL_HOME=str(home), RAI_API_PORT=str(free_port()))
    return subprocess.run([sys.executable, "-m", "raictl", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_chat_on_a_read_only_home_is_one_line_and_a_hint(readonly_home):
    done = raictl(readonly_home, "chat", "hello")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    error, hint = done.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: cannot write ") and "credentials.json" in error
    assert hint.startswith("hint: RAICTL_HOME must be a writable folder")


def test_doctor_fails_a_read_only_home(readonly_home):
    done = raictl(readonly_home, "doctor", "host.home", "--json")
    import json

    check = json.loads(done.stdout)["checks"][0]
    assert (done.returncode, check["id"], check["status"]) == (1, "host.home", "fail")
    assert "not writable" in check["summary"]


def test_doctor_passes_a_writable_home(tmp_path):
    import json

    done = raictl(tmp_path / "fresh", "doctor", "host.home", "--json")
    check = json.loads(done.stdout)["checks"][0]
    assert check["status"] in ("ok", "warn") and "writable" in check["summary"] or "free" in check["summary"]
    assert not (tmp_path / "fresh").exists()  # doctor created nothing


@pytest.mark.skipif(os.geteuid() != 0, reason="a full disk is a small tmpfs mount, which needs root")
def test_a_full_disk_does_not_leave_the_wal_holding_the_space(tmp_path):
    """Chat until SQLite says the disk is full: the WAL holds about 1 MiB at most (checkpointed and cut
    back as it goes), not the disk's space (before: SQLite's 4 MiB auto-checkpoint never came, the WAL
    took the whole 3 MiB disk, and a checkpoint could not run any more: it needs room in the database)."""
    from services.rai_api import db
    from alembic import command

    from migrations import alembic_config
    from raishared.settings import load_settings
    from services.rai_api.app import create_app

    disk = tmp_path / "disk"
    disk.mkdir()
    _mount(disk, "size=3m")
    url = f"sqlite:///{disk / 'rai.db'}"
    app = None
    try:
        command.upgrade(alembic_config(url), "head")
        app = create_app(load_settings(database_url=url, llm_api_url=f"http://127.0.0.1:{free_port()}"))
        client = app.test_client()
        assert client.post("/api/auth/register", json={"username": "alice", "password": "correct horse"}).status_code == 201
        token = client.post("/api/auth/login", json={"username": "alice", "password": "correct horse"}).json["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        status, n = 200, 0
        while status == 200 and n < 2000:  # memory commands are stored without the LLM
            status = client.post("/api/chat", json={"message": f"remember that fact {n} " + "x" * 7000},
                                 headers=headers).status_code
            n += 1
        assert status == 503, "the 3 MiB disk never filled"
        wal = disk / "rai.db-wal"
        # A checkpoint interval plus the transactions since (each rewrites the growing facts list).
        assert not wal.exists() or wal.stat().st_size <= 2 * db.WAL_SIZE_LIMIT, wal.stat().st_size
    finally:
        if app is not None:
            app.extensions["rai_db"].dispose()
        subprocess.run(["umount", str(disk)], check=True)

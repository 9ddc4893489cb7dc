"""The Alembic history from empty to head, down to base and up again, on SQLite and MariaDB.

At head the database must be exactly the models' schema: Alembic's own comparison finds nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from migrations import alembic_config
from services.rai_api.models import Base
from services.rai_api.schema import read_state
from tests.migrate_support import HEAD
from tests.support import REPO, with_connection
from tests.migrate_support import HEAD


def _differences(connection):
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def _tables(connection):
    return set(sa.inspect(connection).get_table_names())


def test_empty_to_head_is_exactly_the_models(db_url):
    command.upgrade(alembic_config(db_url), "head")
    assert with_connection(db_url, _differences) == []
    state = with_connection(db_url, read_state)
    assert (state.state, state.missing, state.extras) == ("ok", (), ())


def test_down_to_base_and_up_again(db_url):
    config = alembic_config(db_url)
    command.upgrade(config, "head")
    command.downgrade(config, "0001_initial")
    assert "column users.remembered_facts" in with_connection(db_url, read_state).missing
    command.downgrade(config, "base")
    assert with_connection(db_url, _tables) == {"alembic_version"}
    command.upgrade(config, "head")
    assert with_connection(db_url, _differences) == []


def test_alembic_cli_upgrade_head_from_the_repository_root(db_url, tmp_path):
    alembic = Path(sys.executable).with_name("alembic")
    env = {"PATH": str(alembic.parent), "RAI_DATABASE_URL": db_url, "RAICTL_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(alembic), "upgrade", "head"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert with_connection(db_url, read_state).state == "ok"
    current = subprocess.run([str(alembic), "current"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert f"{HEAD} (head)" in current.stdout


def test_alembic_cli_with_default_settings_creates_the_sqlite_database(tmp_path):
    """A fresh checkout: no RAI_DATABASE_URL, no <home> folder yet; `alembic upgrade head` makes both."""
    alembic = Path(sys.executable).with_name("alembic")
    home = tmp_path / "fresh" / ".raictl"
    env = {"PATH": str(alembic.parent), "RAICTL_HOME": str(home)}
    done = subprocess.run([str(alembic), "upgrade", "head"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert with_connection(f"sqlite:///{home / 'rai.db'}", read_state).state == "ok"


def test_alembic_cli_with_an_absolute_ini_from_another_folder(sqlite_url, tmp_path):
    """`alembic -c /path/to/alembic.ini upgrade head` from elsewhere: the scripts are found beside the ini."""
    alembic = Path(sys.executable).with_name("alembic")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": str(alembic.parent), "RAI_DATABASE_URL": sqlite_url, "RAICTL_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(alembic), "-c", str(REPO / "alembic.ini"), "upgrade", "head"], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert with_connection(sqlite_url, read_state).state == "ok"


def test_alembic_cli_with_a_bad_database_url_is_one_failed_line(tmp_path):
    alembic = Path(sys.executable).with_name("alembic")
    env = {"PATH": str(alembic.parent), "RAI_DATABASE_URL": "postgresql://rai:s3cret-pw@127.0.0.1/rai",
           "RAICTL_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(alembic), "-c", str(REPO / "alembic.ini"), "upgrade", "head"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr
    assert (done.stdout + done.stderr).strip() == ("FAILED: RAI_DATABASE_URL names an unsupported database: postgresql "
                                   "(hint: use SQLite (the default) or MariaDB/MySQL through mysql+pymysql://)")


def test_alembic_cli_x_url_names_the_database(sqlite_url, tmp_path):
    """`alembic -x url=...` migrates that database, not the one the settings would pick."""
    alembic = Path(sys.executable).with_name("alembic")
    env = {"PATH": str(alembic.parent), "RAICTL_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(alembic), "-c", str(REPO / "alembic.ini"), "-x", f"url={sqlite_url}", "upgrade",
                           "head"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert with_connection(sqlite_url, read_state).state == "ok" and not (tmp_path / "home").exists()

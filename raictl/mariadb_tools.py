"""MariaDB's own client programs, used for the backup and its restore when they are installed:
`mariadb-dump` (or `mysqldump`) writes the backup, `mariadb` (or `mysql`) replays it.

Both run with the connection of the database URL: host and port over TCP (as pymysql connects), or
its `unix_socket`; the password goes in the child's environment (MYSQL_PWD, readable only by this
user), never on a command line. A URL with other connection options (TLS files, ...) is not
translated: `usable_for` says no and the backup falls back to raictl's own SQL writer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from raictl.errors import RaictlError

DUMPS = ("mariadb-dump", "mysqldump")
CLIENTS = ("mariadb", "mysql")
PASSED_OPTIONS = {"charset", "unix_socket"}  # URL query keys these programs are given (or need not be)
DUMP_TIMEOUT_S = 3600


def find(names: tuple[str, ...]) -> str | None:
    """The first of `names` on PATH."""
    return next((path for path in map(shutil.which, names) if path), None)


def usable_for(url: sa.URL) -> bool:
    """Whether the URL's connection can be handed to the client programs as it is."""
    return url.get_backend_name() in ("mysql", "mariadb") and set(url.query) <= PASSED_OPTIONS


def connection_args(url: sa.URL) -> list[str]:
    """The options that connect a client program where `url` connects (no password: see `environment`)."""
    socket = url.query.get("unix_socket")
    args = [f"--socket={socket}"] if isinstance(socket, str) else [
        "--protocol=TCP", f"--host={url.host or '127.0.0.1'}", f"--port={url.port or 3306}"]
    if url.username:
        args.append(f"--user={url.username}")
    return [*args, "--default-character-set=utf8mb4"]


def environment(url: sa.URL) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MYSQL_PWD", None)
    if url.password:
        env["MYSQL_PWD"] = str(url.password)
    return env


def dump(tool: str, url: sa.URL, target: Path) -> None:
    """Every table of the URL's database with its rows (and triggers), in one consistent read
    (--single-transaction), into `target`."""
    # --skip-add-locks: no LOCK TABLES in the file, so a user without that privilege can restore it.
    args = [tool, *connection_args(url), "--single-transaction", "--skip-add-locks", "--hex-blob", "--skip-dump-date",
            f"--result-file={target}", "--", str(url.database)]
    _run(args, url, what=Path(tool).name, stdin=subprocess.DEVNULL,
         hint="check that the database is reachable with the user of RAI_DATABASE_URL")


def replay(client: str, url: sa.URL, source: Path, hint: str) -> None:
    """Run the statements of `source` in the URL's database with the `mariadb` client; `hint` goes
    with a failure."""
    with open(source, "rb") as statements:
        _run([client, *connection_args(url), "--batch", "--", str(url.database)], url,
             what=Path(client).name, stdin=statements, hint=hint)


def _run(args: list[str], url: sa.URL, what: str, stdin: int | BinaryIO, hint: str) -> None:
    try:
        done = subprocess.run(args, env=environment(url), stdin=stdin, capture_output=True, text=True,
                              timeout=DUMP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RaictlError(f"{what} could not finish: {exc}", hint=f"run {what} by hand to see why") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RaictlError(f"{what} failed (exit {done.returncode}): {lines[-1] if lines else 'no message'}", hint=hint)

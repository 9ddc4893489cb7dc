"""Service logs: `<home>/logs/NAME.log`, rotated by size, tailed, followed and interleaved.

Children write to their log file directly (O_APPEND), so they never depend on the supervisor
process being alive to log. Rotation is therefore copy-then-truncate, done by the watch loop: at
`ROTATE_BYTES` the file is copied to NAME.log.1 (older ones shift up to NAME.log.3) and cut to
zero; the child's next append lands at the new start. The supervisor's own events for a service
("started pid 123", "exited: killed by SIGKILL; restart in 0.1s") go into the same file, prefixed
`[raictl]` with a timestamp.
"""

from __future__ import annotations

import re
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from raishared.private_files import ensure_private_dir

if TYPE_CHECKING:
    from raishared.settings import Settings

ROTATE_BYTES = 10 * 1024 * 1024
BACKUPS = 3
TAIL_LINES = 20
_STAMP = re.compile(r"^\[?(?:raictl )?(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?)")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def log_path(logs_dir: Path, name: str) -> Path:
    return logs_dir / f"{name}.log"


def rotate(path: Path, max_bytes: int = ROTATE_BYTES, backups: int = BACKUPS) -> bool:
    """Copy-truncate `path` when it is over `max_bytes`; True when it rotated."""
    try:
        if path.stat().st_size < max_bytes:
            return False
    except FileNotFoundError:
        return False
    for n in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n + 1}"))
    partial = path.with_name(f".{path.name}.1.partial")  # NAME.log.1 appears whole, never half-copied
    shutil.copyfile(path, partial)
    partial.replace(path.with_name(f"{path.name}.1"))
    with open(path, "r+b") as handle:
        handle.truncate(0)
    return True


def event(path: Path, message: str) -> None:
    """Append one supervisor event line to a service's log."""
    ensure_private_dir(path.parent)
    stamp = datetime.now().isoformat(sep=" ", timespec="milliseconds")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"[raictl {stamp}] {message}\n")


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log (reads only the end of a big file)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max(lines, 1) * 400))
            data = handle.read()
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:] if lines > 0 else []


def _stamp(line: str) -> float | None:
    match = _STAMP.match(line)
    if not match:
        return None
    try:
        return datetime.fromisoformat(match.group(1).replace(",", ".")).timestamp()
    except ValueError:
        return None


def parse_since(text: str, now: float | None = None) -> float:
    """The moment `--since` names: a duration back from now (`90s`, `10m`, `2h`, `1d`) or an ISO time
    (`2026-12-02T01:30`, local time like the logs' stamps unless it carries an offset)."""
    from raictl.errors import RaictlError

    match = _DURATION.fullmatch(text.strip())
    if match:
        return (time.time() if now is None else now) - float(match.group(1)) * SECONDS[match.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise RaictlError(f"--since {text!r} is neither a duration nor an ISO time",
                          hint="e.g. --since 10m, --since 2h, --since 2026-12-02T01:30", exit_code=2) from None


def _stamped(lines: list[str]) -> list[tuple[float, str]]:
    """(time, line) for each line: its own leading timestamp, else the one of the line before it."""
    last, out = 0.0, []
    for line in lines:
        last = _stamp(line) or last
        out.append((last, line))
    return out


def since(path: Path, moment: float, backups: int = BACKUPS) -> list[tuple[float, str]]:
    """(time, line) of every line of a log from `moment` on, reaching into rotated copies when needed."""
    found: list[tuple[float, str]] = []
    for candidate in [path] + [path.with_name(f"{path.name}.{n}") for n in range(1, backups + 1)]:
        try:
            text = candidate.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            break
        stamped = _stamped(text.splitlines())
        found = [item for item in stamped if item[0] >= moment] + found
        if stamped and stamped[0][0] >= moment:
            continue  # this file starts after the moment: the one rotated before it may hold more
        break
    return found


def interleave(paths: dict[str, Path], lines: int | None, moment: float | None = None) -> list[tuple[str, str]]:
    """The last `lines` lines of all logs (all of them from `moment` on, when given; at most `lines` if
    that is set too) as (name, line), ordered by their leading timestamps; a line without one (a
    traceback line) keeps to the line before it."""
    stamped = []
    for name, path in paths.items():
        found = since(path, moment) if moment is not None else _stamped(tail(path, TAIL_LINES if lines is None else lines))
        stamped += [(at, name, index, line) for index, (at, line) in enumerate(found)]
    stamped.sort(key=lambda item: (item[0], item[1], item[2]))
    kept = stamped if lines is None else stamped[-lines:] if lines else []
    return [(name, line) for _, name, _, line in kept]


def follow(paths: dict[str, Path], interval: float = 0.1, stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[str, str]]:
    """Yield (name, line) as lines are appended to any of the logs, from their current ends."""
    offsets = {name: (p.stat().st_size if p.exists() else 0) for name, p in paths.items()}
    while not stop():
        quiet = True
        for name, path in paths.items():
            for line in _new_lines(path, offsets, name):
                quiet = False
                yield name, line
        if quiet:
            time.sleep(interval)


def _new_lines(path: Path, offsets: dict[str, int], name: str) -> Iterable[str]:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    if size < offsets[name]:  # rotated: start again from the top
        offsets[name] = 0
    if size == offsets[name]:
        return []
    with open(path, "rb") as handle:
        handle.seek(offsets[name])
        data = handle.read()
    complete = data.rfind(b"\n") + 1
    offsets[name] += complete
    return data[:complete].decode("utf-8", errors="replace").splitlines()


def log_files(settings: Settings, service: str | None, follow: bool = False) -> dict[str, Path]:
    """name -> log path: the one service named, or every configured or recorded service.

    Without `follow`, only logs that exist (a RaictlError when there is none to show); with it,
    every one, so a log that appears later is followed too."""
    from raictl.errors import RaictlError
    from raictl.supervisor.spec import all_specs, select
    from raictl.supervisor.state import DamagedState, SupervisorState, read_state, service_names

    specs = all_specs(settings)
    try:
        state = read_state(settings.home)
    except DamagedState:  # logs need no state: only the services it recorded beyond the configured ones
        state = SupervisorState()
    names = service_names([s.name for s in specs], state)
    if service is not None and service not in names:
        select(specs, [service], with_deps=False)  # raises the usage error naming the known services
    paths = {name: log_path(settings.logs_dir, name) for name in ([service] if service else names)}
    existing = {name: path for name, path in paths.items() if path.exists()}
    if not existing and not follow:
        if service:
            raise RaictlError(f"{service} has no log yet ({paths[service]})",
                              hint=f"`raictl up {service}` starts it; `raictl logs -f {service}` waits for its log")
        raise RaictlError(f"no service has a log yet (in {settings.logs_dir})",
                          hint="`raictl up` starts the services; `raictl logs -f` waits for their logs")
    return paths if follow else existing

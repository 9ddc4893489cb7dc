"""The log relay of an extra service: each line of its output gets a timestamp, like the built-ins' lines.

The built-ins log through Python's logging (`2026-12-02 01:30:00,123 INFO ...`); an extra service is
any program, whose lines carry no time, so `raictl logs` could not interleave them or cut them at
`--since`. `process.spawn` therefore sends an extra service's stdout and stderr through a pipe to
`python -m raictl.supervisor.stamp`, started with the service's environment (run marker included,
so `down` and the sweep find it) and its stdout appended to the service's log. It writes
`YYYY-MM-DD HH:MM:SS,mmm LINE` per line and exits when the last writer closes the pipe: it ignores
SIGTERM and SIGINT, so what the service prints while stopping is still written. Standard library only.
"""

from __future__ import annotations

import signal
import sys
from datetime import datetime
from typing import IO


def stamp(line: bytes, now: datetime | None = None) -> bytes:
    """`line` with the time in front, in the format of the built-ins' logging (`%(asctime)s`)."""
    moment = now or datetime.now()
    return moment.strftime("%Y-%m-%d %H:%M:%S,").encode() + b"%03d " % (moment.microsecond // 1000) + line


def relay(source: IO[bytes], sink: IO[bytes]) -> None:
    """Copy `source` to `sink` line by line, stamped, flushed per line, until end of input."""
    for line in iter(source.readline, b""):
        sink.write(stamp(line if line.endswith(b"\n") else line + b"\n"))
        sink.flush()


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    relay(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()

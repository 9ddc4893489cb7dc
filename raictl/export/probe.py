"""`python -m raictl.export.probe PORT [PATH] [--host H] [--wait S] [--answered]`: the probe exported files run.

Exit 0 when `PATH` answers HTTP 200 on HOST:PORT (without PATH: when the port accepts), else 1 with one
line on stderr. `--answered` is raictl's liveness: any HTTP status will do (a 503 for a database that is
down is not cured by a restart; a process that answers nothing is). With `--wait`, retry until then: systemd's ExecStartPost= uses it so a unit becomes
active only once its service is ready (what compose's `service_healthy` means). The image has no curl;
this is raictl's own probe (`raictl status` uses the same code), stdlib only.
"""

from __future__ import annotations

import argparse
import sys
import time

from raictl.supervisor.probes import probe_health, probe_listen


def check(host: str, port: int, path: str | None, answered: bool = False) -> tuple[bool, str]:
    """(ok, what was seen) for one probe; `answered`: any HTTP status counts."""
    if path:
        health = probe_health(host, port, path)
        return (health.status is not None if answered else health.ok), health.detail
    listen = probe_listen(host, port)
    return listen.ok, listen.detail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raictl.export.probe", description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("path", nargs="?")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to keep retrying")
    parser.add_argument("--answered", action="store_true", help="any HTTP status passes (liveness)")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.wait
    while True:
        ok, detail = check(args.host, args.port, args.path, args.answered)
        if ok or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if not ok:
        sys.stderr.write(f"{args.host}:{args.port}{args.path or ''}: {detail}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

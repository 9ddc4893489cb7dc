"""What the supervisor tests share: tiny real HTTP servers declared as extra services in a
raictl.toml, and `Stack`, which runs `raictl` for real in that folder (the `stack` fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

SERVER = """
import http.server, os, socket, threading
{prelude}
port = int(os.environ["PORT"])
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "{path}" else 404)
        self.end_headers()
        self.wfile.write(b'{{"status": "ok"}}')
    def log_message(self, *args):
        pass
class V6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
servers = [http.server.ThreadingHTTPServer(("127.0.0.1", port), Health), V6(("::1", port), Health)]
print("serving on", port, flush=True)
threading.Thread(target=servers[1].serve_forever, daemon=True).start()
servers[0].serve_forever()
"""


def service_table(name: str, script: str, port: int | None = None, **keys) -> str:
    lines = [f"[services.{name}]", f"command = ['python', '-c', '''{textwrap.dedent(script)}''']"]
    if port:
        lines += [f"port = {port}", 'health = "/api/health"']
    lines += [f"{k} = {_toml(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


class Stack:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tables: list[str] = []

    def declare(self, name: str, script: str, port: int | None = None, **keys) -> int | None:
        self.tables.append(service_table(name, script, port, **keys))
        (self.folder / "raictl.toml").write_text("\n".join(self.tables))
        return port

    def raictl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "raictl", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.folder)

    def status(self) -> dict[str, dict]:
        result = self.raictl("status", "--json")
        assert result.returncode in (0, 3), result.stderr
        return {s["name"]: s for s in json.loads(result.stdout)["services"]}

    def state(self) -> dict:
        return json.loads((Path(os.environ["RAICTL_HOME"]) / "state.json").read_text())


def served(prelude: str = "", path: str = "/api/health") -> str:
    """A `python -c` script: `prelude`, then GET `path` answers 200 on both loopbacks at $PORT."""
    return SERVER.format(prelude=prelude, path=path)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

"""What a user watches while services run: `logs` (-f, -n, all interleaved), health on every
address, the restart delay starting over, rotation by the watch loop, the live progress line and
`--foreground`'s coloured prefixes on a terminal. Real `raictl` processes, real children, real ptys.
"""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.supervisor_support import Stack, alive, served
from tests.support import ctrl_c_as_at_a_terminal, free_port, wait_until

# A healthy server on both loopbacks that also prints a numbered tick every 50 ms.
TICKER = served("""import itertools, sys, threading, time
def tick():
    for n in itertools.count():
        print("tick", n, flush=True)
        time.sleep(0.05)
threading.Thread(target=tick, daemon=True).start()""")

# Health answers 200 on 127.0.0.1 always; on ::1 it answers 503 after SIGUSR1, and the ::1
# listener closes after SIGUSR2: one address going bad while the other stays fine.
SPLIT_BRAIN = """
import http.server, os, signal, socket, threading
port = int(os.environ["PORT"])
v6_status = [200]
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = v6_status[0] if self.server is servers[1] else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}' if code == 200 else b'{"status": "degraded"}')
    def log_message(self, *args):
        pass
class V6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
servers = [http.server.ThreadingHTTPServer(("127.0.0.1", port), Health), V6(("::1", port), Health)]
def close_v6():
    servers[1].shutdown()
    servers[1].server_close()
signal.signal(signal.SIGUSR1, lambda *a: v6_status.__setitem__(0, 503))
signal.signal(signal.SIGUSR2, lambda *a: threading.Thread(target=close_v6).start())
threading.Thread(target=servers[1].serve_forever, daemon=True).start()
servers[0].serve_forever()
"""

# Writes just over the rotation size (10 MiB) to its log, then says so and sleeps.
BIG_WRITER = """import sys, time
chunk = ("x" * 1023 + "\\n") * 1024
for _ in range(11):
    sys.stdout.write(chunk)
sys.stdout.flush()
print("written", flush=True)
time.sleep(600)"""


class Lines:
    """A child's output read line by line on a thread, so a test can wait with a timeout."""

    def __init__(self, stream) -> None:
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))

    def next_matching(self, text: str, timeout: float = 15) -> str:
        """The next line containing `text`; fails after `timeout` seconds in all, with what it saw."""
        deadline, seen = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if text in line:
                return line
            seen.append(line)
        raise AssertionError(f"no line with {text!r} within {timeout}s; saw {seen[-5:]}")


def _raictl_popen(stack: Stack, *args: str, **kwargs) -> subprocess.Popen:
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True,
               "preexec_fn": ctrl_c_as_at_a_terminal}  # `_interrupt` may send it SIGINT
    return subprocess.Popen([sys.executable, "-m", "raictl", *args], cwd=stack.folder, **{**options, **kwargs})


def _interrupt(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _tick(line: str) -> int:
    return int(line.rsplit("tick ", 1)[1])


def test_logs_follow_waits_for_a_log_then_prints_new_lines_as_they_come(stack):
    stack.declare("ticker", TICKER, free_port())
    follower = _raictl_popen(stack, "logs", "-f")  # no log exists yet: it waits, it does not fail
    try:
        lines = Lines(follower.stdout)
        assert stack.raictl("up", "ticker").returncode == 0
        first = lines.next_matching(" tick ")
        later = lines.next_matching(" tick ")
        assert _tick(later) > _tick(first)  # lines keep coming from the running service
        # padded to the widest name, llm_api; stamped by the relay like the built-ins' lines
        assert re.fullmatch(r"ticker  \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} tick \d+", later), later
    finally:
        out, err = _interrupt(follower)
    assert follower.returncode == 0 and "Traceback" not in err, err

    named = _raictl_popen(stack, "logs", "ticker", "-f", "-n", "1")
    try:
        lines = Lines(named.stdout)
        shown = [lines.next_matching("tick ") for _ in range(3)]
        ticks = [_tick(line) for line in shown]
        assert ticks == sorted(ticks) and len(set(ticks)) == 3
        assert not any(" | " in line for line in shown)  # one service named: no prefixes
    finally:
        _, err = _interrupt(named)
    assert named.returncode == 0 and "Traceback" not in err, err


def test_logs_n_lines_unknown_service_and_no_log_yet(stack):
    stack.declare("ticker", TICKER, free_port())
    stack.declare("quiet", served(), free_port())
    none_yet = stack.raictl("logs")
    assert none_yet.returncode == 1 and none_yet.stderr.startswith("error: no service has a log yet")
    assert "hint: `raictl up`" in none_yet.stderr
    assert stack.raictl("up", "ticker").returncode == 0
    wait_until(lambda: "tick 3" in stack.raictl("logs", "ticker").stdout, what="a few ticks logged")
    three = stack.raictl("logs", "ticker", "-n", "3")
    assert three.returncode == 0 and len(three.stdout.splitlines()) == 3, three.stdout
    quiet = stack.raictl("logs", "quiet")
    assert quiet.returncode == 1 and "quiet has no log yet" in quiet.stderr and "raictl up quiet" in quiet.stderr
    unknown = stack.raictl("logs", "nosuch")
    assert unknown.returncode == 2
    assert "unknown service 'nosuch'" in unknown.stderr and "llm_api, rai_api, ticker, quiet" in unknown.stderr
    negative = stack.raictl("logs", "-n", "-1")
    assert negative.returncode == 2 and "Traceback" not in negative.stderr


def test_health_failing_on_one_address_is_named_and_status_exits_3(stack):
    port = stack.declare("split", SPLIT_BRAIN, free_port())
    assert stack.raictl("up", "split").returncode == 0
    log = Path(os.environ["RAICTL_HOME"]) / "logs" / "split.log"
    assert f"ready (127.0.0.1:{port}, [::1]:{port})" in log.read_text()  # an IPv6 literal in brackets
    pid = stack.status()["split"]["pid"]
    one_bad = json.loads(stack.raictl("status", "--json").stdout)  # the built-ins are stopped: look at split
    assert {s["name"]: s for s in one_bad["services"]}["split"]["health"]["ok"]
    os.kill(pid, signal.SIGUSR1)  # ::1 now answers 503
    split = wait_until(lambda: _split_if(stack, lambda s: not s["health"]["ok"]), what="health failing on ::1")
    assert split["state"] == "running" and all(l["ok"] for l in split["listen"])
    assert split["health"]["detail"] == "::1: HTTP 503 (degraded); ok on 127.0.0.1"
    assert set(split["health"]) == {"ok", "latency_ms", "detail"}  # one object, as DESIGN.md says
    table = stack.raictl("status")
    assert table.returncode == 3 and "::1: HTTP 503" in table.stdout
    os.kill(pid, signal.SIGUSR2)  # ::1 stops listening
    split = wait_until(lambda: _split_if(stack, lambda s: not s["listen"][1]["ok"]), what="::1 refusing")
    assert [(l["host"], l["port"], l["ok"]) for l in split["listen"]] == [("127.0.0.1", port, True), ("::1", port, False)]
    assert "::1:" in split["health"]["detail"]
    assert stack.raictl("status").returncode == 3


def _split_if(stack: Stack, condition) -> dict | None:
    split = stack.status()["split"]
    return split if condition(split) else None


def test_the_watch_loop_rotates_a_log_past_its_size(stack):
    from raictl.supervisor.logs import ROTATE_BYTES

    stack.declare("chatty", BIG_WRITER)
    assert stack.raictl("up", "chatty").returncode == 0
    log = Path(os.environ["RAICTL_HOME"]) / "logs" / "chatty.log"
    wait_until(lambda: log.with_name("chatty.log.1").exists(), timeout=20, what="chatty.log.1")
    backup = log.with_name("chatty.log.1")
    assert backup.stat().st_size >= ROTATE_BYTES
    assert log.stat().st_size < ROTATE_BYTES
    # the writer's last line is in the backup, or (rotated mid-write) in the log it kept appending to
    wait_until(lambda: "written" in backup.read_text()[-200:] or "written" in log.read_text(),
               what="the writer's last line kept")
    assert stack.status()["chatty"]["state"] == "running"  # the writer was not disturbed


def _run_on_pty(stack: Stack, args: list[str], stdout_tty: bool, stderr_tty: bool) -> tuple[int, str, str]:
    """Run raictl with stdout and/or stderr on a real pseudo-terminal; returns (code, out, err)."""
    ends = {name: pty.openpty() if tty else None for name, tty in (("out", stdout_tty), ("err", stderr_tty))}
    streams = {name: end[1] if end else subprocess.PIPE for name, end in ends.items()}
    proc = subprocess.Popen([sys.executable, "-m", "raictl", *args], cwd=stack.folder,
                            stdout=streams["out"], stderr=streams["err"])
    for end in ends.values():
        if end:
            os.close(end[1])
    texts = {name: _drain(end[0]) if end else None for name, end in ends.items()}
    out, err = proc.communicate(timeout=60)
    return (proc.returncode, texts["out"] if stdout_tty else out.decode(),
            texts["err"] if stderr_tty else err.decode())


def _drain(master: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal's other end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_progress_line_only_on_a_terminal(stack):
    stack.declare("web", served(), free_port())
    code, out, err = _run_on_pty(stack, ["up", "web"], stdout_tty=True, stderr_tty=True)
    assert code == 0 and "waiting: web: " in err and "\x1b[2K" in err
    assert stack.raictl("down").returncode == 0
    code, out, err = _run_on_pty(stack, ["up", "web"], stdout_tty=False, stderr_tty=True)
    assert code == 0 and "web ready" in out
    assert "waiting:" not in err and "\r" not in err  # piped output: no redraws anywhere


def test_restart_of_a_stopped_service_starts_it_and_up_when_running_says_so(stack):
    stack.declare("web", served(), free_port())
    restart = stack.raictl("restart", "web")
    assert restart.returncode == 0 and restart.stdout.strip() == "✓ web ready", restart.stderr
    pid = stack.status()["web"]["pid"]
    again = stack.raictl("up", "web")
    assert again.returncode == 0 and again.stdout.strip() == "✓ web already running"
    assert stack.status()["web"]["pid"] == pid


def test_foreground_prefixes_are_coloured_on_a_terminal(stack):
    stack.declare("web", served(), free_port())
    master, slave = pty.openpty()
    fg = subprocess.Popen([sys.executable, "-m", "raictl", "up", "web", "--foreground"], cwd=stack.folder,
                          stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    collected: list[str] = []
    reader = threading.Thread(target=lambda: collected.append(_drain(master)), daemon=True)
    reader.start()
    try:
        wait_until(lambda: stack.status()["web"]["health"]["ok"], timeout=30, what="web healthy in foreground")
        pid = stack.status()["web"]["pid"]
        fg.send_signal(signal.SIGINT)
        fg.wait(timeout=30)
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.wait()
    reader.join(timeout=10)
    text = collected[0]
    assert fg.returncode == 0
    # the first service's prefix in cyan, its line stamped by the relay
    assert re.search(r"\x1b\[36mweb \|\x1b\[0m \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} serving on", text), text
    assert not alive(pid)


def test_ctrl_c_while_up_waits_is_one_line_and_leaves_the_service_to_down(stack):
    stack.declare("slow", served("import time; time.sleep(5)"), free_port())
    up = _raictl_popen(stack, "up", "slow")
    try:
        wait_until(lambda: stack.state()["services"]["slow"]["state"] == "starting", timeout=20,
                   what="slow starting while up waits")
    finally:
        out, err = _interrupt(up)
    assert up.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines() == ["interrupted", "hint: what was already started keeps running: "
                                        "`raictl status` shows it, `raictl down` stops it"]
    assert stack.raictl("down").stdout.strip() == "■ slow stopped"


def test_not_ready_by_the_timeout_names_what_is_missing_with_the_log_tail(stack):
    port = free_port()
    (stack.folder / "raictl.toml").write_text(
        f"[services.web]\ncommand = ['python', '-c', '''{served()}''']\nport = {port}\nhealth = '/not-here'\n")
    result = stack.raictl("up", "web", "--timeout", "2")
    assert result.returncode == 1, result.stderr
    assert "✗ web: not ready after 2s: health 127.0.0.1: HTTP 404 (ok); ::1: HTTP 404 (ok)" in result.stderr
    assert f"serving on {port}" in result.stderr  # the log tail is on screen
    assert "hint: full log: raictl logs web" in result.stderr


def test_not_ready_names_each_refusing_address_ipv6_in_brackets(stack):
    port = free_port()
    (stack.folder / "raictl.toml").write_text(
        f"[services.mute]\ncommand = ['python', '-c', 'import time; time.sleep(30)']\nport = {port}\n")
    result = stack.raictl("up", "mute", "--timeout", "1")
    assert result.returncode == 1, result.stderr
    assert f"✗ mute: not ready after 1s: 127.0.0.1:{port} " in result.stderr
    assert f"; [::1]:{port} " in result.stderr

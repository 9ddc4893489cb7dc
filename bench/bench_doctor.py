"""How long `raictl doctor` takes: healthy, everything down, and a service that accepts and never answers.

Goals (issue 6): healthy stack < 1.5 s; everything down < 3 s; a silent listener on a port < 3 s.
In a temp folder with its own raictl.toml (free ports, mock engine, SQLite), times in the same run:
  floor      `python -c pass`: an interpreter starting and stopping
  cli        `python -m raictl --help`: what every raictl command pays before it does anything
  healthy    `python -m raictl doctor --json` after `raictl up` (every check, e2e chat included)
  down       the same after `raictl down`
  silent     the same with a listener on the RAI API's port that never accepts a connection
and prints medians, each against the goal and as a ratio to the floor and the CLI. Run from the
repository root:
    python bench/bench_doctor.py [RUNS]
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from raishared.settings import FIELDS  # noqa: E402
from tests.support import free_port  # noqa: E402

GOALS = {"healthy": 1.5, "down": 3.0, "silent": 3.0}
SETTING_VARS = {var for f in FIELDS for var in f.env}


def timed(args: list[str], cwd: Path, env: dict[str, str], expect: tuple[int, ...]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    if done.returncode not in expect:
        raise SystemExit(f"{' '.join(args[2:])} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return elapsed


def doctor_summary(cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "raictl", "doctor", "--json"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)
    checks = json.loads(done.stdout)["checks"]
    counts = {s: sum(1 for c in checks if c["status"] == s) for s in ("ok", "warn", "fail", "skip")}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def silent_listener(port: int) -> list[socket.socket]:
    """Sockets on both loopbacks that listen and never accept: connections complete, nobody answers."""
    socks = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the stopped RAI API left TIME_WAITs
        sock.bind((host, port))
        sock.listen(64)
        socks.append(sock)
    return socks


def measure(runs: int, folder: Path, env: dict[str, str]) -> dict[str, list[float]]:
    py, doctor = sys.executable, [sys.executable, "-m", "raictl", "doctor", "--json"]
    times: dict[str, list[float]] = {k: [] for k in ("floor", "cli", "healthy", "down", "silent")}
    raictl = lambda *a: subprocess.run([py, "-m", "raictl", *a], cwd=folder, env=env, capture_output=True, timeout=90)
    if raictl("up").returncode:
        raise SystemExit("raictl up failed")
    try:
        print(f"healthy: {doctor_summary(folder, env)}")
        for _ in range(runs):
            times["floor"].append(timed([py, "-c", "pass"], folder, env, (0,)))
            times["cli"].append(timed([py, "-m", "raictl", "--help"], folder, env, (0,)))
            times["healthy"].append(timed(doctor, folder, env, (0,)))
    finally:
        raictl("down")
    print(f"down: {doctor_summary(folder, env)}")
    times["down"] = [timed(doctor, folder, env, (1,)) for _ in range(runs)]
    socks = silent_listener(int(env["RAI_API_PORT"]))
    try:
        print(f"silent: {doctor_summary(folder, env)}")
        times["silent"] = [timed(doctor, folder, env, (1,)) for _ in range(runs)]
    finally:
        for sock in socks:
            sock.close()
    return times


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-doctor-") as tmp:
        folder = Path(tmp)
        (folder / "raictl.toml").write_text('home = "home"\n[llm_api]\nengine = "mock"\n')
        env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
        env.update(RAI_API_PORT=str(free_port()), LLM_API_PORT=str(free_port()))
        times = measure(runs, folder, env)
    floor, cli = statistics.median(times["floor"]), statistics.median(times["cli"])
    load = ", ".join(f"{x:.1f}" for x in load)
    print(f"\nload average before the run: {load} (shared machine: compare the ratios too)")
    print(f"{'case':<8} {'median':>8} {'min':>7} {'goal':>6}  {'x floor':>7} {'x cli':>6}  ({runs} runs, {os.cpu_count()} CPUs)")
    for case, values in times.items():
        med = statistics.median(values)
        goal = f"{GOALS[case]:.1f}s" if case in GOALS else ""
        verdict = ("  ok" if med < GOALS[case] else "  OVER") if case in GOALS else ""
        print(f"{case:<8} {med:7.3f}s {min(values):6.3f}s {goal:>6}  {med / floor:7.1f} {med / cli:6.1f}{verdict}")


if __name__ == "__main__":
    main()

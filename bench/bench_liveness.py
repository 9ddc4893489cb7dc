"""Liveness: how soon a SIGSTOPped service is seen unhealthy and serves again, against its own start time.

The LLM API (mock engine, SQLite-free) on free ports. In the same run:

- start time: `raictl up llm_api` from nothing until it returns ready (then `raictl down`), median;
- recovery: `raictl up llm_api`, SIGSTOP its process, then time until `raictl status --json` shows
  it `unhealthy`, and until both loopbacks' health answer 200 again from a new process (status
  polled until the new pid shows, then health alone every 10 ms).

Goal: serving again within interval x threshold + 1.2 x its own start time. The liveness keys are
written to a raictl.toml (defaults: the documented ones; --interval/--threshold to try others).

    python bench/bench_liveness.py [--runs 3] [--interval 5] [--timeout 2] [--threshold 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raictl.supervisor.spec import LIVENESS_DEFAULTS  # noqa: E402
from tests.support import free_port  # noqa: E402


def raictl(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raictl", *args], env=env, capture_output=True, text=True,
                          cwd=folder, timeout=180)


def llm_status(folder: Path, env: dict[str, str]) -> dict:
    done = raictl(folder, env, "status", "--json")
    return {s["name"]: s for s in json.loads(done.stdout)["services"]}["llm_api"]


def serves(port: int) -> bool:
    for host in ("127.0.0.1", "[::1]"):
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/api/health", timeout=1) as answer:
                if answer.status != 200:
                    return False
        except OSError:
            return False
    return True


def time_start(folder: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    up = raictl(folder, env, "up", "llm_api")
    elapsed = time.perf_counter() - start
    raictl(folder, env, "down")
    if up.returncode != 0:
        raise SystemExit(f"raictl up failed:\n{up.stdout}{up.stderr}")
    return elapsed


def time_recovery(folder: Path, env: dict[str, str], port: int, limit: float) -> tuple[float, float]:
    """(seconds until status shows unhealthy, seconds until it serves again), from the SIGSTOP.

    `raictl status` is polled until it shows the service unhealthy and then a new pid; from then on
    only health is polled (every 10 ms), so the moment it serves again is not blurred by a status
    call (~100 ms each)."""
    if raictl(folder, env, "up", "llm_api").returncode != 0:
        raise SystemExit("raictl up llm_api failed")
    pid = llm_status(folder, env)["pid"]
    try:
        stopped_at = time.perf_counter()
        os.kill(pid, signal.SIGSTOP)
        unhealthy = None
        while time.perf_counter() - stopped_at < limit:
            now = llm_status(folder, env)
            if unhealthy is None and now["state"] == "unhealthy":
                unhealthy = time.perf_counter() - stopped_at
            if now["pid"] not in (None, pid):  # a new process: the old one is gone (it was killed first)
                break
            time.sleep(0.05)
        while time.perf_counter() - stopped_at < limit:
            if serves(port):
                return unhealthy if unhealthy is not None else float("nan"), time.perf_counter() - stopped_at
            time.sleep(0.01)
        raise SystemExit(f"not serving again within {limit:g}s")
    finally:
        raictl(folder, env, "down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval", type=float, default=LIVENESS_DEFAULTS["liveness_interval"])
    parser.add_argument("--timeout", type=float, default=LIVENESS_DEFAULTS["liveness_timeout"])
    parser.add_argument("--threshold", type=int, default=LIVENESS_DEFAULTS["liveness_failures"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-liveness-") as tmp:
        folder, port = Path(tmp), free_port()
        (folder / "raictl.toml").write_text(f"[llm_api]\nliveness_interval = {args.interval}\n"
                                            f"liveness_timeout = {args.timeout}\nliveness_failures = {args.threshold}\n")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        env.update(RAICTL_HOME=str(folder / "home"), LLM_ENGINE="mock", LLM_API_PORT=str(port),
                   RAI_API_PORT=str(free_port()))
        budget = args.interval * args.threshold
        starts, unhealthy, serving = [], [], []
        time_start(folder, env)  # warm the page cache
        for _ in range(args.runs):
            starts.append(time_start(folder, env))
            seen, back = time_recovery(folder, env, port, budget + 60)
            unhealthy.append(seen)
            serving.append(back)
    start, back = statistics.median(starts), statistics.median(serving)
    goal = budget + 1.2 * start
    print(f"liveness: interval {args.interval:g}s x threshold {args.threshold} (timeout {args.timeout:g}s)")
    print(f"start of llm_api alone (raictl up):  median {start * 1000:.0f} ms  runs {[round(x * 1000) for x in starts]}")
    print(f"SIGSTOP -> status shows unhealthy:   median {statistics.median(unhealthy) * 1000:.0f} ms  "
          f"runs {[round(x * 1000) for x in unhealthy]}")
    print(f"SIGSTOP -> serving again:            median {back * 1000:.0f} ms  runs {[round(x * 1000) for x in serving]}")
    print(f"goal: interval x threshold + 1.2 x start = {goal * 1000:.0f} ms; ratio serving/goal: {back / goal:.2f}x "
          f"(goal <= 1.00x)")


if __name__ == "__main__":
    main()

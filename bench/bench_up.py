"""`raictl up` from nothing running to both services healthy, against a bare baseline.

The baseline is a small script that launches the same two service commands (same interpreter,
same environment) with bare `subprocess.Popen` in the same order as raictl: the RAI API once the
LLM API's health answers 200 (polled every 10 ms), as `depends_on` readiness asks, then polls the
RAI API's health. Goal: raictl up <= 1.15x baseline.
Both start from a database already at head (migrated once beforehand), SQLite, mock engine,
free ports. Runs are interleaved; medians are compared.

    python bench/bench_up.py [--runs 5]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raictl.supervisor.process import launch_env  # noqa: E402
from raictl.supervisor.spec import builtin_specs  # noqa: E402
from raishared.settings import load_settings  # noqa: E402
from tests.support import free_port  # noqa: E402


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(RAICTL_HOME=str(home), LLM_ENGINE="mock", LLM_API_PORT=str(free_port()),
               RAI_API_PORT=str(free_port()))
    return env


def raictl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raictl", *args], env=env, capture_output=True, text=True,
                          cwd=env["RAICTL_HOME"], timeout=120)


def time_raictl_up(env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = raictl(env, "up")
    elapsed = time.perf_counter() - start
    raictl(env, "down")
    if result.returncode != 0:
        raise SystemExit(f"raictl up failed:\n{result.stdout}{result.stderr}")
    return elapsed


BASELINE = """
import json, subprocess, sys, time, urllib.request
launches = json.loads(sys.argv[1])
procs = []
for cmd, env, url in launches:  # in dependency order: each once the one before it serves
    procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True))
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.01)
print(json.dumps([p.pid for p in procs]))
"""


def time_baseline(env: dict[str, str]) -> float:
    """A script of its own (as `raictl up` is a command of its own): Popen each command in dependency
    order once the one before answers health 200 (polled every 10 ms), print the pids. Timed from
    launch to exit."""
    settings = load_settings(cwd=env["RAICTL_HOME"], environ=env)
    launches = [(list(s.command), {**launch_env(s, settings), "PATH": env["PATH"]},
                 f"http://127.0.0.1:{s.port}/api/health") for s in builtin_specs(settings)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BASELINE, json.dumps(launches)], capture_output=True,
                          text=True, timeout=120)
    elapsed = time.perf_counter() - start
    for pid in json.loads(done.stdout):
        os.killpg(pid, signal.SIGTERM)
    for pid in json.loads(done.stdout):
        while _exists(pid):
            time.sleep(0.02)
    return elapsed


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-up-") as tmp:
        env = environment(Path(tmp))
        os.environ.update({k: env[k] for k in ("RAICTL_HOME", "LLM_ENGINE", "LLM_API_PORT", "RAI_API_PORT")})
        migrated = raictl(env, "migrate")
        if migrated.returncode != 0:
            raise SystemExit(f"raictl migrate failed: {migrated.stderr}")
        ours, base = [], []
        time_baseline(env)  # warm the page cache for both
        for _ in range(args.runs):
            base.append(time_baseline(env))
            ours.append(time_raictl_up(env))
    b, o = statistics.median(base), statistics.median(ours)
    print(f"baseline (Popen in order + 10 ms polls): median {b * 1000:.0f} ms  runs {[round(x * 1000) for x in base]}")
    print(f"raictl up (to all ready):                median {o * 1000:.0f} ms  runs {[round(x * 1000) for x in ours]}")
    print(f"ratio raictl/baseline: {o / b:.2f}x  (goal <= 1.15x)")


if __name__ == "__main__":
    main()

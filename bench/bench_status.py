"""`raictl status` against `supervisorctl status`, and `raictl --help` start-up time.

Both supervisors watch two copies of the same tiny HTTP server. supervisor comes from PyPI into a
venv of its own (never a raictl dependency): pass --supervisor-venv, or one is created in a temp
folder. Calls are interleaved; medians are compared. Goals: raictl status <= 1.0x supervisorctl
status; raictl --help < 150 ms.

    python bench/bench_status.py [--runs 21] [--supervisor-venv /tmp/supervisor-venv]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.supervisor_support import served  # noqa: E402
from tests.support import free_port  # noqa: E402

SERVER = served()  # healthy on both loopbacks at $PORT, like the tests' extra services

SUPERVISORD_CONF = """[unix_http_server]
file={dir}/supervisor.sock
[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{dir}/supervisor.sock
"""
PROGRAM = "[program:{name}]\ncommand={python} {script}\nenvironment=PORT=\"{port}\"\n"


def supervisor_venv(given: str | None, tmp: Path) -> Path:
    if given:
        return Path(given)
    venv = tmp / "supervisor-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "supervisor"], check=True)
    return venv


def timed(cmd: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def start_supervisord(venv: Path, folder: Path, script: Path) -> list[str]:
    conf = folder / "supervisord.conf"
    programs = "".join(PROGRAM.format(name=n, python=sys.executable, script=script, port=free_port())
                       for n in ("web", "api"))
    conf.write_text(SUPERVISORD_CONF.format(dir=folder) + programs)
    subprocess.run([str(venv / "bin" / "supervisord"), "-c", str(conf)], check=True)
    ctl = [str(venv / "bin" / "supervisorctl"), "-c", str(conf)]
    deadline = time.monotonic() + 30
    while subprocess.run(ctl + ["status"], capture_output=True, text=True).stdout.count("RUNNING") < 2:
        if time.monotonic() > deadline:
            raise SystemExit("supervisord's programs did not reach RUNNING")
        time.sleep(0.2)
    return ctl


def start_raictl(folder: Path, script: Path, env: dict[str, str]) -> None:
    tables = "".join(f"[services.{n}]\ncommand = ['python', '{script}']\nport = {free_port()}\n"
                     f"health = '/api/health'\n" for n in ("web", "api"))
    (folder / "raictl.toml").write_text(tables)
    up = subprocess.run([sys.executable, "-m", "raictl", "up", "web", "api"], cwd=folder, env=env,
                        capture_output=True, text=True)
    if up.returncode != 0:
        raise SystemExit(f"raictl up failed: {up.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--supervisor-venv")
    args = parser.parse_args()
    raictl_bin = str(Path(sys.executable).with_name("raictl"))
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp_name:
        tmp = Path(tmp_name)
        venv = supervisor_venv(args.supervisor_venv, tmp)
        script = tmp / "server.py"
        script.write_text(SERVER)
        (tmp / "sd").mkdir()
        (tmp / "rc").mkdir()
        env = {**os.environ, "RAICTL_HOME": str(tmp / "rc" / "home"),
               "LLM_API_PORT": str(free_port()), "RAI_API_PORT": str(free_port())}
        ctl = start_supervisord(venv, tmp / "sd", script)
        try:
            start_raictl(tmp / "rc", script, env)
            ours, theirs, helps = [], [], []
            for _ in range(args.runs):
                theirs.append(timed(ctl + ["status"]))
                ours.append(timed([raictl_bin, "status"], cwd=tmp / "rc", env=env))
                helps.append(timed([raictl_bin, "--help"], cwd=tmp / "rc", env=env))
        finally:
            subprocess.run([sys.executable, "-m", "raictl", "down"], cwd=tmp / "rc", env=env, capture_output=True)
            subprocess.run(ctl + ["shutdown"], capture_output=True)
    o, t, h = (statistics.median(x) * 1000 for x in (ours, theirs, helps))
    print(f"supervisorctl status: median {t:.0f} ms")
    print(f"raictl status:        median {o:.0f} ms  (probes 4 listen addresses + 4 health URLs)")
    print(f"ratio raictl/supervisorctl: {o / t:.2f}x  (goal <= 1.0x)")
    print(f"raictl --help:        median {h:.0f} ms  (goal < 150 ms)")


if __name__ == "__main__":
    main()

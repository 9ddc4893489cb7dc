"""How much `raictl chat "hi"` costs over the least any Python client must pay for the same exchange.

Starts the real LLM API (mock engine) and RAI API on free ports in a temp folder, warms the account
and token up once, then times, in the same run and interleaved:
  raictl     `python -m raictl chat hi` (settings, cached token, health probe, chat, print)
  cli-floor  `python -m raictl version`: what every raictl command pays before it does anything
  baseline   `python -S -c ...`: a bare urllib script sending the same health + chat requests
  curl       the chat request alone with curl, when curl is installed (no interpreter at all)
and prints medians, the ratio raictl / baseline and what chat adds over the CLI floor. Run from the repository root:
    python bench/chat_oneshot.py [RUNS]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import ServiceProcess, free_port, service_env  # noqa: E402

BASELINE = """
import json, sys, urllib.request
base, token = sys.argv[1], sys.argv[2]
urllib.request.urlopen(base + "/api/health", timeout=5).read()
req = urllib.request.Request(base + "/api/chat", data=json.dumps({"message": "hi"}).encode(), method="POST",
                             headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
print(json.loads(urllib.request.urlopen(req, timeout=30).read())["response"])
"""


def start_stack(home: Path) -> tuple[ServiceProcess, ServiceProcess]:
    from alembic import command

    from migrations import alembic_config

    url = f"sqlite:///{home / 'rai.db'}"
    command.upgrade(alembic_config(url), "head")
    llm_port, rai_port = free_port(), free_port()
    llm = ServiceProcess("services.llm_api", llm_port, service_env(home, LLM_API_PORT=str(llm_port), LLM_ENGINE="mock"),
                         log=home / "llm.log").start()
    rai = ServiceProcess("services.rai_api", rai_port,
                         service_env(home, RAI_DATABASE_URL=url, RAI_API_PORT=str(rai_port),
                                     LLM_API_URL=f"http://127.0.0.1:{llm_port}"), log=home / "rai.log").start()
    return llm, rai


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(runs: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="raictl-bench-chat-"))
    llm, rai = start_stack(home)
    try:
        env = {**os.environ, "RAICTL_HOME": str(home / "client"), "RAI_API_PORT": str(rai.port),
               "PYTHONPATH": str(REPO)}
        timed([sys.executable, "-m", "raictl", "chat", "hi"], env)  # registers and caches the token
        token = json.loads((home / "client" / "token.json").read_text())["access_token"]
        peers = {"raictl": [sys.executable, "-m", "raictl", "chat", "hi"],
                 "cli-floor": [sys.executable, "-m", "raictl", "version"],
                 "baseline": [sys.executable, "-S", "-c", BASELINE, rai.url(""), token]}
        if shutil.which("curl"):
            peers["curl"] = ["curl", "-sf", "-H", f"Authorization: Bearer {token}", "-H",
                             "Content-Type: application/json", "-d", '{"message": "hi"}', rai.url("/api/chat")]
        times: dict[str, list[float]] = {name: [] for name in peers}
        for _ in range(runs):  # interleaved, so a noisy neighbour slows every peer alike
            for name, argv in peers.items():
                times[name].append(timed(argv, env))
    finally:
        rai.stop()
        llm.stop()
        shutil.rmtree(home, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:9s} median {median * 1000:7.1f} ms over {runs} runs")
    print(f"ratio raictl/baseline: {medians['raictl'] / medians['baseline']:.2f}; "
          f"chat's own cost over the CLI floor: {(medians['raictl'] - medians['cli-floor']) * 1000:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)

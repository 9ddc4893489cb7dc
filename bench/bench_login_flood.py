"""Chat throughput of the RAI API alone, then under a login flood (issue 13 item 7), in the same run.

The attack measured 168 chat req/s falling to 45 (0.27x) with 8 threads posting wrong passwords: every
request thread was hashing. Here the RAI API (SQLite, LLM API on the mock engine) is driven with C
keep-alive chat connections for a window, then again while F other connections post wrong passwords for
one account from the same address (so the flood meets the rate limit and the hashing slots, which are the
defence; the flood's answers are counted by status). Goal: chat under the flood at least 0.5x chat alone.

    python bench/bench_login_flood.py [--seconds 5] [--connections 8] [--flood 8]

Exit code 0 when the goal is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import http.client
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_api import chat_load, measure, start  # noqa: E402
from tests.support import free_port  # noqa: E402

GOAL = 0.5


def flood(port: int, stop: threading.Event, counts: dict[int, int]) -> None:
    """Wrong passwords as fast as the server answers, counting the statuses."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"username": "victim", "password": "wrong password"}).encode()
    while not stop.is_set():
        try:
            conn.request("POST", "/api/auth/login", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            counts[response.status] = counts.get(response.status, 0) + 1
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--flood", type=int, default=8)
    args = parser.parse_args()
    from alembic import command

    from migrations import alembic_config

    with tempfile.TemporaryDirectory(prefix="raictl-bench-") as root:
        url = f"sqlite:///{Path(root) / 'rai.db'}"
        command.upgrade(alembic_config(url), "head")
        llm_port, rai_port = free_port(), free_port()
        llm = start("services.llm_api", Path(root) / "llm", llm_port, LLM_ENGINE="mock", LLM_API_PORT=str(llm_port))
        rai = start("services.rai_api", Path(root) / "rai", rai_port, RAI_DATABASE_URL=url,
                    RAI_API_PORT=str(rai_port), LLM_API_URL=f"http://127.0.0.1:{llm_port}")
        try:
            load = chat_load(rai, args.connections)
            alone = measure("chat alone", rai_port, load, args.connections, args.seconds, (rai, llm))
            stop, counts = threading.Event(), {}
            flooders = [threading.Thread(target=flood, args=(rai_port, stop, counts)) for _ in range(args.flood)]
            for thread in flooders:
                thread.start()
            time.sleep(1.0)
            flooded = measure("chat under a login flood", rai_port, load, args.connections, args.seconds, (rai, llm))
            stop.set()
            for thread in flooders:
                thread.join()
        finally:
            rai.stop()
            llm.stop()
    rate_alone = len(alone.latencies) / alone.seconds
    rate_flooded = len(flooded.latencies) / flooded.seconds
    print(f"chat alone: {rate_alone:.1f} req/s ({alone.errors} errors)")
    print(f"chat under {args.flood} login-flood connections: {rate_flooded:.1f} req/s ({flooded.errors} errors); "
          f"flood answers: {dict(sorted(counts.items()))}")
    ratio = rate_flooded / rate_alone if rate_alone else 0.0
    print(f"ratio: {ratio:.2f}x chat alone; goal >= {GOAL}x")
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())

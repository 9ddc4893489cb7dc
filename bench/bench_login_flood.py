"""Chat throughput of the RAI API alone, under a login flood (issue 13 item 7), and under a flood of
health requests as the peer, in the same run.

The attack measured 168 chat req/s falling to 45 (0.27x) with 8 threads posting wrong passwords: every
request thread was hashing. Here the RAI API (SQLite, LLM API on the mock engine) is driven with C
keep-alive chat connections for a window, then again while F other connections post wrong passwords for
one account from the same address (so the flood meets the rate limit and the hashing slots, which are the
defence; the flood's answers are counted by status), then while F connections GET /api/health as fast
as it answers: a flood of a request that costs no hash and no write.

Goal: the login flood costs chats no more than the health flood (chat under the login flood at least
0.9x chat under the health flood): hashing is bounded, and a refused login is as cheap as any request.
What any flood of F busy connections costs a single process (about 0.3x chat alone on 2 cores) is
printed too; it is not a login matter (a per-client request limit, docs/decisions.md).

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

GOAL = 0.9


def flood(port: int, path: str, stop: threading.Event, counts: dict[int, int]) -> None:
    """Requests as fast as the server answers, counting the statuses: wrong passwords for one account
    on the login path, plain GETs elsewhere."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    login = path == "/api/auth/login"
    body = json.dumps({"username": "victim", "password": "wrong password"}).encode() if login else None
    while not stop.is_set():
        try:
            conn.request("POST" if login else "GET", path, body=body, headers={"Content-Type": "application/json"})
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
            flooded, counts = under_flood(rai, llm, load, args, "/api/auth/login", "chat under a login flood")
            peer, peer_counts = under_flood(rai, llm, load, args, "/api/health", "chat under a health flood")
        finally:
            rai.stop()
            llm.stop()
    rate_alone, rate_flooded, rate_peer = (len(r.latencies) / r.seconds for r in (alone, flooded, peer))
    print(f"chat alone: {rate_alone:.1f} req/s ({alone.errors} errors)")
    print(f"chat under {args.flood} login-flood connections: {rate_flooded:.1f} req/s ({flooded.errors} errors); "
          f"flood answers: {dict(sorted(counts.items()))}")
    print(f"chat under {args.flood} health-flood connections: {rate_peer:.1f} req/s ({peer.errors} errors); "
          f"flood answers: {dict(sorted(peer_counts.items()))}")
    print(f"any flood of {args.flood} connections: chat at {rate_peer / rate_alone:.2f}x alone under health requests, "
          f"{rate_flooded / rate_alone:.2f}x under logins")
    ratio = rate_flooded / rate_peer if rate_peer else 0.0
    print(f"ratio: chat under the login flood {ratio:.2f}x chat under the health flood; goal >= {GOAL}x")
    return 0 if ratio >= GOAL else 1


def under_flood(rai, llm, load, args, path: str, label: str):
    """The chat load measured while `args.flood` connections hammer `path` (after a second to settle)."""
    stop, counts = threading.Event(), {}
    flooders = [threading.Thread(target=flood, args=(rai.port, path, stop, counts)) for _ in range(args.flood)]
    for thread in flooders:
        thread.start()
    try:
        time.sleep(1.0)
        return measure(label, rai.port, load, args.connections, args.seconds, (rai, llm)), counts
    finally:
        stop.set()
        for thread in flooders:
            thread.join()


if __name__ == "__main__":
    sys.exit(main())

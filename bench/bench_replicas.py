"""Chat throughput with 1, 2 and 3 RAI API replicas on one MariaDB database (LLM API on the mock engine).

Each replica is a real `python -m services.rai_api` on its own port (consecutive ports, as
`rai_api.replicas` runs them), all sharing one database and one token secret; the load's keep-alive
connections are spread over the replicas in turn. Measured at 16 and 64 connections, each run with the
CPU per chat of the replicas, the LLM API, MariaDB and the load generator, and the ceiling bench_api.py
computes (every core busy with nothing but this CPU per chat). A hello-world baseline runs first and last.

Then what the figures predict for 8 and 32 cores: the smallest of the machine's bound (cores / server CPU
per chat, no load generator), the replicas' bound (a Python process uses at most about one core: the
GIL) and the single LLM API's bound (one process too).

    python bench/bench_replicas.py [--seconds 5] [--mysql mysql+pymysql://root@127.0.0.1:3306/test]
"""

from __future__ import annotations

import argparse
import os

import psutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_api import (Load, Result, _drop_mysql, _fresh_mysql, chat_load, database_server,  # noqa: E402
                             measure, start)
from tests.support import ServiceProcess, free_port, free_ports  # noqa: E402

REPLICAS = (1, 2, 3)
CONNECTIONS = (16, 64)
CORES = (8, 32)
SECRET = "bench-replicas-shared-signing-secret-0123456789"


def run_replicas(count: int, url: str, root: Path, llm: ServiceProcess, seconds: float,
                 database: psutil.Process | None) -> list[tuple[int, Result]]:
    ports = free_ports(count)
    replicas = [start("services.rai_api", root / f"rai{count}-{i}", port, RAI_DATABASE_URL=url,
                      RAI_API_PORT=str(port), RAI_API_HOSTS="127.0.0.1", LLM_API_PORT=str(llm.port),
                      RAI_SECRET_KEY=SECRET) for i, port in enumerate(ports)]
    try:
        found = []
        for connections in CONNECTIONS:
            load = chat_load(replicas[0], connections)  # sessions made through one, chatted in through all
            found.append((connections, measure(f"chat x{count}", tuple(ports), load, connections, seconds,
                                               (*replicas, llm), database)))
        return found
    finally:
        for replica in replicas:
            replica.stop()


def split(result: Result, replicas: int) -> tuple[float, float]:
    """(ms of CPU per chat in all the replicas, in the LLM API): server_cpu_s lists replicas, then the LLM API."""
    chats = len(result.latencies) or 1
    return sum(result.server_cpu_s[:replicas]) * 1000 / chats, result.server_cpu_s[replicas] * 1000 / chats


def predict(result: Result, replicas: int, cores: int) -> tuple[float, str]:
    """(chats/s, the bound that sets it) on a machine with `cores` cores, from this run's CPU per chat."""
    rai_ms, llm_ms = split(result, replicas)
    bounds = {"cores": cores * 1000 / (rai_ms + llm_ms + result.db_cpu_ms_per_request),
              "replicas (GIL)": replicas * 1000 / rai_ms if rai_ms else float("inf"),
              "one LLM API (GIL)": 1000 / llm_ms if llm_ms else float("inf")}
    bound = min(bounds, key=lambda name: bounds[name])
    return bounds[bound], bound


def report(rows: list[tuple[int, int, Result]], baseline: float) -> None:
    print(f"{'replicas':>8} {'conns':>5} {'chats':>6} {'errors':>6} {'chat/s':>7} {'x1':>5} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'rai ms':>6} {'llm ms':>6} {'db ms':>6} {'client':>6} {'ratio':>6} {'ceiling':>7}")
    first = {c: r.rate for n, c, r in rows if n == 1}
    for replicas, connections, r in rows:
        rai_ms, llm_ms = split(r, replicas)
        print(f"{replicas:>8} {connections:>5} {len(r.latencies):>6} {r.errors:>6} {r.rate:>7.0f} "
              f"{r.rate / first[connections]:>5.2f} {r.percentile(50):>7.1f} {r.percentile(99):>7.1f} "
              f"{rai_ms:>6.2f} {llm_ms:>6.2f} {r.db_cpu_ms_per_request:>6.2f} {r.client_cpu_ms_per_request:>6.2f} "
              f"{r.rate / baseline:>6.2f} {r.ceiling_rate / baseline:>7.2f}")
    print("\nprediction from these CPU figures (server side only; the load generator runs elsewhere):")
    for replicas, connections, r in rows:
        if connections != CONNECTIONS[-1]:
            continue
        parts = [f"{cores} cores: {rate:.0f} chat/s ({bound})" for cores in CORES
                 for rate, bound in [predict(r, replicas, cores)]]
        print(f"  {replicas} replica(s): " + "; ".join(parts))
    one = next(r for n, c, r in rows if n == 1 and c == CONNECTIONS[-1])
    rai_ms, llm_ms = split(one, 1)
    for cores in CORES:
        machine = cores * 1000 / (rai_ms + llm_ms + one.db_cpu_ms_per_request)
        print(f"  {cores} cores: about {machine * rai_ms / 1000:.1f} replicas keep every core busy "
              f"({machine:.0f} chat/s at one replica's CPU per chat), unless the one LLM API process "
              f"caps it first at {1000 / llm_ms:.0f} chat/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring window per run")
    parser.add_argument("--mysql", default=os.environ.get("RAI_TEST_MYSQL_URL"), help="a MariaDB/MySQL server URL")
    args = parser.parse_args()
    if not args.mysql:
        parser.error("replicas need MariaDB/MySQL: pass --mysql URL or set RAI_TEST_MYSQL_URL")
    with tempfile.TemporaryDirectory(prefix="rai-bench-replicas-") as tmp:
        root = Path(tmp)
        hello_port, llm_port = free_port(), free_port()
        hello = start("bench.hello_world", root / "hello", hello_port, BENCH_HELLO_PORT=str(hello_port))
        llm = start("services.llm_api", root / "llm", llm_port, LLM_ENGINE="mock", LLM_API_PORT=str(llm_port),
                    LLM_API_HOSTS="127.0.0.1")
        hello_load = Load("GET", "/api/health", ((None, {}),))
        try:
            url = _fresh_mysql(args.mysql)
            from alembic import command

            from migrations import alembic_config

            command.upgrade(alembic_config(url), "head")
            before = measure("hello-world", hello_port, hello_load, 16, args.seconds, (hello,))
            rows = [(n, c, r) for n in REPLICAS
                    for c, r in run_replicas(n, url, root, llm, args.seconds, database_server())]
            after = measure("hello-world", hello_port, hello_load, 16, args.seconds, (hello,))
        finally:
            hello.stop()
            llm.stop()
            _drop_mysql(args.mysql)
    baseline = (before.rate + after.rate) / 2
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.seconds:g}s per run; baseline = "
          f"hello-world at 16 connections, mean of first and last run = {baseline:.0f} req/s")
    print("x1: chat/s relative to one replica at the same connections; rai/llm/db/client ms: CPU per chat of the "
          "replicas (together), the LLM API, MariaDB and the load generator; ratio and ceiling relative to the "
          "baseline, the ceiling as bench_api.py computes it (every core on this run's CPU per chat)")
    report(rows, baseline)
    return 0 if all(r.errors == 0 for _, _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

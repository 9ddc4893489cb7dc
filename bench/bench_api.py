"""Throughput and p50/p99 latency of the RAI API against a bare Flask + waitress hello-world.

Every server runs for real as a child process on a free loopback port, measured in this same run:
the hello-world baseline (`bench.hello_world`), then `GET /api/health` and `POST /api/chat` of the
RAI API (LLM API on the mock engine) on SQLite and, when a MySQL URL is given, on MariaDB.
Load: C keep-alive connections (threads spread over a few client processes, so the client's GIL
is not the bottleneck), a warm-up, then a fixed measuring window. Goals (the foundation issue):
chat >= 0.3x and health >= 0.8x the hello-world rate, with zero errors.

    python bench/bench_api.py [--seconds 5] [--connections 16] [--mysql mysql+pymysql://root@127.0.0.1:3306/test]

Exit code 0 when every goal is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import ServiceProcess, free_port, service_env  # noqa: E402
from tests.support import http as call  # noqa: E402

GOALS = {"health": 0.8, "chat": 0.3}
CLIENT_PROCESSES = 4
WARMUP_S = 1.0


@dataclass(frozen=True)
class Load:
    """What each connection sends: method, path, and per-connection (body, headers)."""

    method: str
    path: str
    requests: tuple[tuple[bytes | None, dict[str, str]], ...]


@dataclass
class Result:
    name: str
    latencies: list[float]
    errors: int
    seconds: float
    cpu_s: float = 0.0  # CPU time the servers involved spent during the window
    client_cpu_s: float = 0.0  # CPU time the client processes spent during the window
    db_cpu_s: float = 0.0  # CPU time the database server (MariaDB) spent during the window
    server_cpu_s: tuple[float, ...] = ()  # the same window's CPU time of each server, in the order given

    def _per_request_ms(self, seconds: float) -> float:
        return seconds * 1000 / len(self.latencies) if self.latencies else float("nan")

    @property
    def cpu_ms_per_request(self) -> float:
        return self._per_request_ms(self.cpu_s)

    @property
    def client_cpu_ms_per_request(self) -> float:
        return self._per_request_ms(self.client_cpu_s)

    @property
    def db_cpu_ms_per_request(self) -> float:
        return self._per_request_ms(self.db_cpu_s)

    @property
    def ceiling_rate(self) -> float:
        """The rate this machine could reach at best: every core busy with nothing but this target's
        CPU per request (servers, database server, load generator), no waiting, no scheduling cost."""
        total_ms = self.cpu_ms_per_request + self.db_cpu_ms_per_request + self.client_cpu_ms_per_request
        return (os.cpu_count() or 1) * 1000 / total_ms

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else float("nan")


def _connection_loop(ports, load, index, start_at, stop_at, latencies, errors) -> None:
    port = ports[index % len(ports)]  # several ports (replicas): connections spread over them in turn
    body, headers = load.requests[index % len(load.requests)]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while (now := time.perf_counter()) < stop_at:
        try:
            conn.request(load.method, load.path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        if now >= start_at:
            (latencies.append(time.perf_counter() - now) if ok else errors.append(1))
    conn.close()


def _client_process(ports, load, indexes, start_at, stop_at, queue) -> None:
    latencies: list[float] = []
    errors: list[int] = []
    threads = [threading.Thread(target=_connection_loop, args=(ports, load, i, start_at, stop_at, latencies, errors))
               for i in indexes]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start_at - time.perf_counter()))
    cpu_start = time.process_time()  # the client's own cost: is it the bottleneck?
    for thread in threads:
        thread.join()
    queue.put((latencies, len(errors), time.process_time() - cpu_start))


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def database_server() -> psutil.Process | None:
    """The local MariaDB/MySQL server process, whose CPU the chat on MariaDB costs too (None if not here)."""
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in ("mariadbd", "mysqld"):
            return process
    return None


def measure(name: str, port: int | tuple[int, ...], load: Load, connections: int, seconds: float,
            servers: tuple[ServiceProcess, ...] = (), database: psutil.Process | None = None) -> Result:
    """Drive `connections` keep-alive connections at `port` (or spread over several ports) for WARMUP_S +
    `seconds`; the CPU time of `servers` and of the `database` server is counted over the measuring window."""
    ports = port if isinstance(port, tuple) else (port,)
    server_processes = [psutil.Process(s.proc.pid) for s in servers]
    database_processes = [database] if database else []
    start_at = time.perf_counter() + WARMUP_S
    stop_at = start_at + seconds
    queue: multiprocessing.Queue = multiprocessing.Queue()
    groups = [list(range(connections))[p::CLIENT_PROCESSES] for p in range(CLIENT_PROCESSES)]
    procs = [multiprocessing.Process(target=_client_process, args=(ports, load, g, start_at, stop_at, queue))
             for g in groups if g]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start_at - time.perf_counter()))  # the warm-up; CPU is counted after it
    cpu_before, db_before = _cpu_seconds(server_processes), _cpu_seconds(database_processes)
    each_before = [_cpu_seconds([p]) for p in server_processes]
    parts = [queue.get() for _ in procs]
    each = tuple(_cpu_seconds([p]) - b for p, b in zip(server_processes, each_before))
    cpu = _cpu_seconds(server_processes) - cpu_before
    db_cpu = _cpu_seconds(database_processes) - db_before
    for proc in procs:
        proc.join()
    return Result(name, [x for lat, _, _ in parts for x in lat], sum(e for _, e, _ in parts), seconds, cpu,
                  sum(c for _, _, c in parts), db_cpu, each)


def chat_load(rai: ServiceProcess, connections: int) -> Load:
    """One user; each connection chats in a session of its own (created here, before measuring)."""
    credentials = {"username": f"bench{uuid.uuid4().hex[:8]}", "password": "bench password"}
    call("POST", rai.url("/api/auth/register"), credentials)
    token = call("POST", rai.url("/api/auth/login"), credentials)[1]["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    call("POST", rai.url("/api/chat"), {"message": "remember that I like green tea"}, token=token)
    requests = []
    for i in range(connections):
        status, body = call("POST", rai.url("/api/chat"), {"message": f"hello from connection {i}"}, token=token)
        assert status == 200, body
        message = {"message": f"What tea do I like? (connection {i})", "session_id": body["session_id"]}
        requests.append((json.dumps(message).encode(), headers))
    return Load("POST", "/api/chat", tuple(requests))


def start(module: str, home: Path, port: int, **env: str) -> ServiceProcess:
    home.mkdir(parents=True, exist_ok=True)
    return ServiceProcess(module, port, service_env(home, **env), hosts=("127.0.0.1",), log=home / "log").start()


def generate_load() -> Load:
    body = json.dumps({"messages": [{"role": "user", "content": "What tea do I like?"}], "system": "You are RAI."})
    return Load("POST", "/api/generate", ((body.encode(), {"Content-Type": "application/json"}),))


def bench_database(label: str, url: str, root: Path, llm: ServiceProcess, args,
                   database: psutil.Process | None = None) -> list[Result]:
    from alembic import command

    from migrations import alembic_config

    command.upgrade(alembic_config(url), "head")
    port = free_port()
    rai = start("services.rai_api", root / label, port, RAI_DATABASE_URL=url, RAI_API_PORT=str(port),
                LLM_API_PORT=str(llm.port))
    try:
        health = measure(f"health ({label})", port, Load("GET", "/api/health", ((None, {}),)), args.connections,
                         args.seconds, (rai,), database)
        chat = measure(f"chat ({label})", port, chat_load(rai, args.connections), args.connections, args.seconds,
                       (rai, llm), database)
    finally:
        rai.stop()
    return [health, chat]


def report(results: list[Result], baseline: float) -> bool:
    print(f"{'target':<18} {'requests':>9} {'errors':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'cpu ms/req':>10} {'db ms':>6} {'client ms':>9} {'ratio':>6} {'ceiling':>7}  goal")
    met = True
    for r in results:
        kind = r.name.split()[0]
        ratio = r.rate / baseline
        goal = GOALS.get(kind)
        ok = r.errors == 0 and (goal is None or ratio >= goal)
        met &= ok
        verdict = "" if goal is None else f">= {goal}x {'met' if ok else 'MISSED'}"
        print(f"{r.name:<18} {len(r.latencies):>9} {r.errors:>6} {r.rate:>8.0f} {r.percentile(50):>7.1f} "
              f"{r.percentile(99):>7.1f} {r.cpu_ms_per_request:>10.2f} {r.db_cpu_ms_per_request:>6.2f} "
              f"{r.client_cpu_ms_per_request:>9.2f} {ratio:>6.2f} {r.ceiling_rate / baseline:>7.2f}  {verdict}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring window per target")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--mysql", default=os.environ.get("RAI_TEST_MYSQL_URL"),
                        help="a MySQL/MariaDB database URL to bench on too (its tables are created there)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rai-bench-") as tmp:
        root = Path(tmp)
        hello_port, llm_port = free_port(), free_port()
        hello = start("bench.hello_world", root / "hello", hello_port, BENCH_HELLO_PORT=str(hello_port))
        llm = start("services.llm_api", root / "llm", llm_port, LLM_ENGINE="mock", LLM_API_PORT=str(llm_port),
                    LLM_API_HOSTS="127.0.0.1")
        try:
            hello_load = Load("GET", "/api/health", ((None, {}),))
            results = [measure("hello-world", hello_port, hello_load, args.connections, args.seconds, (hello,)),
                       measure("llm generate", llm_port, generate_load(), args.connections, args.seconds, (llm,))]
            results += bench_database("sqlite", f"sqlite:///{root / 'rai.db'}", root, llm, args)
            if args.mysql:
                results += bench_database("mariadb", _fresh_mysql(args.mysql), root, llm, args, database_server())
            results.append(measure("hello-world", hello_port, hello_load, args.connections, args.seconds, (hello,)))
        finally:
            hello.stop()
            llm.stop()
            _drop_mysql(args.mysql)
    baseline = (results[0].rate + results[-1].rate) / 2  # measured first and last: drift shows, and averages out
    print(f"{args.connections} connections, {args.seconds:g}s per target after {WARMUP_S:g}s warm-up; "
          f"baseline = mean of the two hello-world runs = {baseline:.0f} req/s; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("cpu ms/req: CPU time of the servers serving the target (chat: RAI API + LLM API) per request; "
          "'llm generate' is the LLM API alone, the hop every chat turn includes; client ms: the load generator's "
          "own CPU per request (it shares the machine's cores with the servers); db ms: the MariaDB server's CPU "
          "per request; ceiling: the ratio this machine could reach at best, every core doing nothing but this "
          "target's CPU per request (servers + db + client) with no waiting: a goal above it cannot be met here")
    return 0 if report(results, baseline) else 1


_BENCH_DB = f"rai_bench_{uuid.uuid4().hex[:8]}"


def _fresh_mysql(server_url: str) -> str:
    import sqlalchemy as sa

    server = sa.make_url(server_url)
    engine = sa.create_engine(server, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{_BENCH_DB}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    engine.dispose()
    return server.set(database=_BENCH_DB).render_as_string(hide_password=False)


def _drop_mysql(server_url: str | None) -> None:
    if not server_url:
        return
    import sqlalchemy as sa

    engine = sa.create_engine(sa.make_url(server_url), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{_BENCH_DB}`")
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())

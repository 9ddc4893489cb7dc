"""A slow LLM: many streamed chats waiting at once while health, login and memory stay prompt.

The fake Gemini (tests/fake_gemini.py, in a process of its own) answers every request in
`--reply-s` seconds spread over `--chunks` chunks. Both services run for real on free loopback
ports (the LLM API on the Gemini engine, the real google-genai client; the RAI API on SQLite, or
MariaDB with --mysql). Phases, in one run:

  1. one streaming chat client for a few seconds: time to first delta at N = 1;
  2. N streaming chat clients (each in a loop: POST /api/chat with "stream": true, read to `done`)
     for `--seconds`, with one probe client in a process of its own calling GET /api/health,
     POST /api/auth/login and a memory command ("what do you remember?") in a loop.

Goals (issue 12), each printed with its figure and ratio:
  - chat throughput >= 0.9 x N / reply-s (the ideal for that latency), 0 errors;
  - probe p50 and p99 <= 100 ms while the chats wait;
  - time to first delta (p50) <= the fake's first chunk + 50 ms, at N = 1 and at N;
  - resident memory of both services at N versus idle, per waiting chat (reported, no goal).

    python bench/bench_slow_llm.py [--clients 128] [--seconds 20] [--reply-s 2] [--chunks 20] [--mysql URL]

Exit code 0 when every goal is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_api import _drop_mysql, _fresh_mysql  # noqa: E402 - one way to make the bench database
from services.sse import read_events  # noqa: E402
from tests.support import ServiceProcess, free_port, service_env  # noqa: E402
from tests.support import http as call  # noqa: E402

CLIENT_PROCESSES = 4  # the chat clients' own GIL must not be what is measured
KEY = "AIzaBENCH-slow-llm-0123456789abcdefghij"
FAKE = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.fake_gemini import FakeGemini
fake = FakeGemini().start()
fake.reply(" ".join("word%d" % i for i in range(4 * {chunks})), chunks={chunks}, delay={delay})
print(fake.port, flush=True)
sys.stdin.read()  # until the bench closes our stdin
"""


@dataclass
class Chats:
    """What the chat clients saw: completed chats, errors (by kind), time to first delta, and the
    clients' own CPU seconds over the window."""

    done: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_delta_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    def add(self, other: "Chats") -> None:
        self.done += other.done
        self.cpu_s += other.cpu_s
        self.first_delta_s += other.first_delta_s
        for kind, count in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + count


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


# ---------------------------------------------------------------- clients

def _chat_once(port: int, token: str, message: str) -> tuple[float | None, str | None]:
    """One streamed chat: (seconds to the first delta, None) or (None, error kind)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        sent = time.perf_counter()
        conn.request("POST", "/api/chat", body=json.dumps({"message": message, "stream": True}),
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        if response.status != 200:
            body = response.read()
            error = json.loads(body) if body.startswith(b"{") else {}
            return None, f"{response.status} {error.get('error')}: {str(error.get('message'))[:120]}"
        first = None
        for event in read_events(response):
            if event.name == "delta" and first is None:
                first = time.perf_counter() - sent
            elif event.name == "error":
                return None, f"error event {event.data.get('error')}: {str(event.data.get('message'))[:120]}"
            elif event.name == "done":
                return first, None
        return None, "stream ended without done"
    except (OSError, http.client.HTTPException) as exc:
        return None, type(exc).__name__
    finally:
        conn.close()


def _chat_loop(port, token, index, start_at, stop_at, result: Chats) -> None:
    """Chat in a loop until stop_at; what ends inside the window [start_at, stop_at] is counted."""
    n = 0
    while time.perf_counter() < stop_at:
        first, error = _chat_once(port, token, f"tell me a story, client {index}, turn {n}")
        n += 1
        if not start_at <= time.perf_counter() <= stop_at:
            continue  # the warm-up, or past the window
        if error:
            result.errors[error] = result.errors.get(error, 0) + 1
        else:
            result.done += 1
            result.first_delta_s.append(first)


def _chat_process(port, token, indexes, start_at, stop_at, queue) -> None:
    result = Chats()
    threads = [threading.Thread(target=_chat_loop, args=(port, token, i, start_at, stop_at, result))
               for i in indexes]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start_at - time.perf_counter()))
    cpu = time.process_time()
    time.sleep(max(0.0, stop_at - time.perf_counter()))
    result.cpu_s = time.process_time() - cpu
    for thread in threads:
        thread.join()
    queue.put(result)


def _probe_process(port, credentials, token, start_at, stop_at, queue) -> None:
    """health, login and a memory command in a loop, each on a fresh connection; latencies per kind."""
    calls = {"health": ("GET", "/api/health", None, None),
             "login": ("POST", "/api/auth/login", credentials, None),
             "memory": ("POST", "/api/chat", {"message": "what do you remember?"}, token)}
    latencies: dict[str, list[float]] = {k: [] for k in calls}
    failures: dict[str, int] = {k: 0 for k in calls}
    while time.perf_counter() < stop_at:
        for kind, (method, path, body, auth) in calls.items():
            began = time.perf_counter()
            try:
                status, _ = call(method, f"http://127.0.0.1:{port}{path}", body, token=auth, timeout=30)
            except OSError:
                status = 0
            if began >= start_at:
                latencies[kind].append(time.perf_counter() - began)
                failures[kind] += status != 200
            time.sleep(0.02)
    queue.put((latencies, failures))


def run_chats(rai: ServiceProcess, token: str, clients: int, seconds: float, warmup: float,
              probe_credentials: dict | None = None, on_window=None) -> tuple[Chats, tuple | None]:
    """`clients` streaming chat loops (and the probe, when given credentials) for warmup + seconds."""
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds
    queue: multiprocessing.Queue = multiprocessing.Queue()
    groups = [g for g in (list(range(clients))[p::CLIENT_PROCESSES] for p in range(CLIENT_PROCESSES)) if g]
    procs = [multiprocessing.Process(target=_chat_process, args=(rai.port, token, g, start_at, stop_at, queue))
             for g in groups]
    if probe_credentials:
        procs.append(multiprocessing.Process(target=_probe_process, args=(
            rai.port, probe_credentials, token, start_at, stop_at, queue)))
    for proc in procs:
        proc.start()
    if on_window:
        on_window(start_at, stop_at)
    parts = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    chats, probe = Chats(), None
    for part in parts:
        if isinstance(part, Chats):
            chats.add(part)
        else:
            probe = part
    return chats, probe


# ---------------------------------------------------------------- servers

def start_fake(chunks: int, reply_s: float) -> tuple[subprocess.Popen, int]:
    script = FAKE.format(repo=str(Path(__file__).resolve().parent.parent), chunks=chunks, delay=reply_s / chunks)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def start(module: str, home: Path, port: int, **env: str) -> ServiceProcess:
    home.mkdir(parents=True, exist_ok=True)
    return ServiceProcess(module, port, service_env(home, **env), hosts=("127.0.0.1",), log=home / "log").start()


def rss_mb(services: list[ServiceProcess]) -> list[float]:
    return [psutil.Process(s.proc.pid).memory_info().rss / 2**20 for s in services]


class Watch:
    """Over the measuring window: the highest resident memory of each service (sampled every 0.2 s)
    and the CPU seconds each process spent (the services, the fake Gemini)."""

    def __init__(self, services: list[ServiceProcess], others: list[psutil.Process]) -> None:
        self.services, self.peak = services, [0.0] * len(services)
        self.processes = [psutil.Process(s.proc.pid) for s in services] + others
        self.cpu_s = [0.0] * len(self.processes)

    def watch(self, start_at: float, stop_at: float) -> None:
        def sample() -> None:
            time.sleep(max(0.0, start_at - time.perf_counter()))
            before = [sum(p.cpu_times()[:2]) for p in self.processes]
            while time.perf_counter() < stop_at:
                self.peak = [max(a, b) for a, b in zip(self.peak, rss_mb(self.services))]
                time.sleep(0.2)
            self.cpu_s = [sum(p.cpu_times()[:2]) - b for p, b in zip(self.processes, before)]
        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()


def account(rai: ServiceProcess) -> tuple[dict, str]:
    credentials = {"username": f"bench{uuid.uuid4().hex[:8]}", "password": "bench password"}
    call("POST", rai.url("/api/auth/register"), credentials)
    token = call("POST", rai.url("/api/auth/login"), credentials)[1]["access_token"]
    call("POST", rai.url("/api/chat"), {"message": "remember that I like green tea"}, token=token)
    return credentials, token


def database_url(args, root: Path) -> str:
    from alembic import command

    from migrations import alembic_config

    url = _fresh_mysql(args.mysql) if args.mysql else f"sqlite:///{root / 'rai.db'}"
    command.upgrade(alembic_config(url), "head")
    return url


# ---------------------------------------------------------------- report

def report(args, one: Chats, many: Chats, probe: tuple, idle: list[float], watch: "Watch") -> bool:
    first_chunk_ms = args.reply_s / args.chunks * 1000
    ideal = args.clients / args.reply_s
    rate = many.done / args.seconds
    latencies, failures = probe
    rows = [("chat throughput /s", rate, 0.9 * ideal, rate / ideal, rate >= 0.9 * ideal and not many.errors)]
    for kind, values in latencies.items():
        for p in (50, 99):
            ms = percentile(values, p) * 1000
            rows.append((f"probe {kind} p{p} ms", ms, 100.0, ms / 100, ms <= 100 and not failures[kind]))
    for label, chats in (("N=1", one), (f"N={args.clients}", many)):
        ms = statistics.median(chats.first_delta_s) * 1000 if chats.first_delta_s else float("nan")
        goal = first_chunk_ms + 50
        rows.append((f"first delta p50 ms {label}", ms, goal, ms / goal, ms <= goal))
    print(f"{'measure':<28} {'value':>9} {'goal':>9} {'ratio':>6}  verdict")
    for name, value, goal, ratio, ok in rows:
        print(f"{name:<28} {value:>9.1f} {goal:>9.1f} {ratio:>6.2f}  {'met' if ok else 'MISSED'}")
    print(f"chats completed {many.done}, errors {sum(many.errors.values())} {many.errors or ''}; "
          f"probe calls {sum(len(v) for v in latencies.values())}, failures {failures}")
    for name, before, after in zip(("RAI API", "LLM API"), idle, watch.peak):
        print(f"{name} RSS idle {before:.1f} MiB, at N={args.clients} {after:.1f} MiB: "
              f"{(after - before) * 1024 / args.clients:.0f} KiB per waiting chat")
    cpu = dict(zip(("RAI API", "LLM API", "fake Gemini"), watch.cpu_s), clients=many.cpu_s)
    per_chat = {k: v * 1000 / max(1, many.done) for k, v in cpu.items()}
    ceiling = (os.cpu_count() or 1) * 1000 / sum(per_chat.values())
    print("CPU ms per chat: " + ", ".join(f"{k} {v:.1f}" for k, v in per_chat.items())
          + f"; total {sum(per_chat.values()):.1f} -> ceiling {ceiling:.1f} chats/s on {os.cpu_count()} idle cores "
            f"({ceiling / ideal:.2f}x the ideal {ideal:.1f}/s)")
    return all(ok for *_, ok in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--reply-s", type=float, default=2.0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--mysql", default=None, help="bench on this MariaDB server (a fresh database) instead of SQLite")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for both services, e.g. RAI_API_MAX_WAITING=64 (repeatable)")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    fake, fake_port = start_fake(args.chunks, args.reply_s)
    with tempfile.TemporaryDirectory(prefix="rai-slow-") as tmp:
        root = Path(tmp)
        llm_port, rai_port = free_port(), free_port()
        llm = start("services.llm_api", root / "llm", llm_port, LLM_API_PORT=str(llm_port), LLM_API_HOSTS="127.0.0.1",
                    GEMINI_API_KEY=KEY, GEMINI_BASE_URL=f"http://127.0.0.1:{fake_port}", **extra)
        try:
            rai = start("services.rai_api", root / "rai", rai_port, RAI_DATABASE_URL=database_url(args, root),
                        RAI_API_PORT=str(rai_port), RAI_API_HOSTS="127.0.0.1", LLM_API_PORT=str(llm_port), **extra)
            try:
                credentials, token = account(rai)
                one, _ = run_chats(rai, token, 1, max(3.0, 2 * args.reply_s), warmup=args.reply_s)
                idle = rss_mb([rai, llm])
                watch = Watch([rai, llm], [psutil.Process(fake.pid)])
                many, probe = run_chats(rai, token, args.clients, args.seconds, warmup=args.reply_s,
                                        probe_credentials=credentials, on_window=watch.watch)
                watch.thread.join()
            finally:
                rai.stop()
        finally:
            llm.stop()
            fake.stdin.close()
            fake.wait(10)
            _drop_mysql(args.mysql)
    print(f"fake Gemini: {args.reply_s:g}s per reply in {args.chunks} chunks; {args.clients} streaming clients for "
          f"{args.seconds:g}s after a {args.reply_s:g}s warm-up; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; settings {extra or 'defaults'}")
    return 0 if report(args, one, many, probe, idle, watch) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Streaming overhead of the openai engine: time to first token through the LLM API and the RAI API,
versus the same fake OpenAI-compatible server called directly with the official `openai` client.

Three ways to the same first piece of the same reply, in the same run, interleaved turn by turn:

- direct: `openai.OpenAI(base_url=fake).chat.completions.create(stream=True)`, time to the first
  content delta (the baseline: what any OpenAI-compatible client pays);
- LLM API: `POST /api/generate {"stream": true}` to the real LLM API (`LLM_ENGINE=openai`, the same
  SDK inside), time to the first `delta` event;
- both services: `POST /api/chat {"stream": true}` to the real RAI API (SQLite) in front of that LLM
  API, time to the first `delta` event (the account, session, context and the stored turn included).

The fake runs in a process of its own (`python -m tests.fake_openai`), so the direct client does not
share a GIL with it. Every piece of the fake's reply is sent at once (no model latency), so what is
measured is what the services add. Goal: both services' p50 <= direct p50 + 30 ms. Free ports only.

    python bench/bench_openai_stream.py [--turns 40]

Exit code 0 when the goal is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import REPO, ServiceProcess, free_port, service_env  # noqa: E402
from tests.support import http as call  # noqa: E402

GOAL_MS = 30.0
REPLY = "Streaming tokens from a local model, one piece after another, " * 4


def direct_ttft(client) -> float:
    start, first = time.perf_counter(), None
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "hello"}])
    for chunk in stream:  # read to the end, as the services do: the connection is then reused
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("the fake streamed no text")
    return first


def sse_ttft(port: int, path: str, body: dict, token: str | None = None) -> float:
    """Time to the first `event: delta` of a streamed POST (a fresh connection, as a CLI makes)."""
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, json.dumps({**body, "stream": True}), headers)
        response = conn.getresponse()
        for line in response:
            if line.startswith(b"event: delta"):
                elapsed = time.perf_counter() - start
                response.read()  # let the turn finish (and be stored) before the next one
                return elapsed
        raise RuntimeError(f"no delta from {path}: HTTP {response.status}")
    finally:
        conn.close()


def start_fake() -> tuple[subprocess.Popen, str]:
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_openai", REPLY], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    return fake, fake.stdout.readline().strip()


def start_stack(root: Path, fake_url: str) -> tuple[ServiceProcess, ServiceProcess]:
    from alembic import command

    from migrations import alembic_config

    llm_port, rai_port = free_port(), free_port()
    (root / "llm").mkdir()
    llm = ServiceProcess("services.llm_api", llm_port, service_env(
        root / "llm", LLM_API_PORT=llm_port, LLM_API_HOSTS="127.0.0.1", OPENAI_BASE_URL=fake_url),
        hosts=("127.0.0.1",), log=root / "llm" / "log").start()
    url = f"sqlite:///{root / 'rai.db'}"
    command.upgrade(alembic_config(url), "head")
    rai = ServiceProcess("services.rai_api", rai_port, service_env(
        root, RAI_DATABASE_URL=url, RAI_API_PORT=rai_port, RAI_API_HOSTS="127.0.0.1",
        LLM_API_URL=f"http://127.0.0.1:{llm_port}", RAI_SECRET_KEY=uuid.uuid4().hex),
        hosts=("127.0.0.1",), log=root / "rai.log").start()
    return llm, rai


def token_for(rai: ServiceProcess) -> str:
    creds = {"username": "bench", "password": "correct horse"}
    call("POST", rai.url("/api/auth/register"), creds)
    return call("POST", rai.url("/api/auth/login"), creds)[1]["access_token"]


def summary(name: str, samples: list[float], baseline: float | None = None) -> str:
    ms = sorted(s * 1000 for s in samples)
    p50, p90 = statistics.median(ms), ms[int(len(ms) * 0.9) - 1]
    extra = f"  (+{p50 - baseline:.1f} ms vs direct)" if baseline is not None else ""
    return f"{name:<14} p50 {p50:7.1f} ms   p90 {p90:7.1f} ms{extra}"


def main() -> int:
    import openai

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    fake, fake_url = start_fake()
    with tempfile.TemporaryDirectory() as tmp:
        llm, rai = start_stack(Path(tmp), fake_url)
        try:
            client = openai.OpenAI(base_url=fake_url, api_key="no-key", max_retries=0)
            token, session = token_for(rai), None
            generate = {"messages": [{"role": "user", "content": "hello"}]}
            times: dict[str, list[float]] = {"direct": [], "LLM API": [], "both services": []}
            for turn in range(args.turns + 3):  # the first 3 warm every path up
                samples = (direct_ttft(client), sse_ttft(llm.port, "/api/generate", generate),
                           sse_ttft(rai.port, "/api/chat", {"message": f"hello {turn}"}, token))
                if turn >= 3:
                    for key, sample in zip(times, samples):
                        times[key].append(sample)
        finally:
            rai.stop()
            llm.stop()
            fake.communicate("")  # stdin closed: the fake ends
    direct = statistics.median(times["direct"]) * 1000
    print(f"time to first token, {args.turns} turns each, fake OpenAI server on 127.0.0.1")
    for name, samples in times.items():
        print(summary(name, samples, None if name == "direct" else direct))
    overhead = statistics.median(times["both services"]) * 1000 - direct
    ok = overhead <= GOAL_MS
    print(f"goal: both services <= direct + {GOAL_MS:g} ms (p50): {'met' if ok else 'NOT met'} (+{overhead:.1f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

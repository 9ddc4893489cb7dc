"""`raictl chat` streams: the reply reaches stdout as Gemini generates it, and Ctrl-C in the REPL stops
the reply, not the REPL. Real processes: the LLM API on the Gemini engine against the fake Gemini,
the RAI API, and `python -m raictl chat` itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import http, wait_until
from tests.test_rai_stream_served import fake, llm_api, rai, token  # noqa: F401 - module fixtures

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_fake(fake):  # noqa: F811
    fake.reset()


def raictl(rai, *args: str, **popen) -> subprocess.Popen:  # noqa: F811
    env = {**os.environ, "RAI_API_PORT": str(rai.port), "PYTHONPATH": str(REPO)}
    # SIGINT as the default in the child, whatever the test runner's is: Python then turns it into
    # KeyboardInterrupt as it does for a user at a terminal.
    return subprocess.Popen([sys.executable, "-m", "raictl", "chat", *args], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)


def test_one_shot_prints_the_reply_while_it_is_generated(rai, fake):  # noqa: F811
    fake.reply("first piece, then the rest", chunks=3, delay=1.0)
    proc = raictl(rai, "tell me")
    try:
        first = proc.stdout.read(len("first pie"))  # the first chunk's text (26 characters in 3 chunks)
        assert first == "first pie"
        assert proc.poll() is None  # still running: the later chunks are still to come
        out = proc.stdout.read()  # through the same reader: communicate() would skip what it buffered
        err = proc.stderr.read()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert first + out == "first piece, then the rest\n"


@pytest.mark.parametrize("flags", [["--no-stream"], ["--json"]])
def test_no_stream_and_json_print_the_whole_reply_once(rai, fake, flags):  # noqa: F811
    fake.reply("all at once", chunks=2)
    proc = raictl(rai, *flags, "hello")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == "all at once\n" if flags == ["--no-stream"] else '"response": "all at once"' in out


def read_until(stream, text: str, limit: int = 10_000) -> str:
    """What `stream` gives up to and including `text` (blocking reads, at most `limit` characters)."""
    seen = ""
    while text not in seen and len(seen) < limit:
        char = stream.read(1)
        if not char:
            break
        seen += char
    assert text in seen, f"never saw {text!r}; got {seen!r}"
    return seen


def stored_replies(rai, isolated) -> list[str]:  # noqa: F811
    """The assistant messages of the local account's only session, read through the API."""
    import json

    credentials = json.loads((isolated / ".raictl" / "credentials.json").read_text())
    token_ = http("POST", rai.url("/api/auth/login"), credentials)[1]["access_token"]
    [session] = http("GET", rai.url("/api/sessions"), token=token_)[1]["sessions"]
    messages = http("GET", rai.url(f"/api/sessions/{session['id']}/messages"), token=token_)[1]["messages"]
    return [m["content"] for m in messages if m["role"] == "assistant"]


def test_ctrl_c_in_the_repl_stops_the_reply_and_keeps_the_repl(rai, fake, isolated):  # noqa: F811
    fake.reply("Once upon a time " + "and then " * 40, chunks=20, delay=0.5)
    proc = raictl(rai)
    try:
        proc.stdin.write("tell me a story\n")
        proc.stdin.flush()
        read_until(proc.stdout, "Once")
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: stored_replies(rai, isolated)[-1].endswith("[interrupted: the client disconnected]"),
                   30, what="the interrupted reply stored")
        fake.reply("a second answer")
        out, err = proc.communicate("and now?\n/exit\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "(interrupted) reply stopped: what arrived is kept in the session" in err and "Traceback" not in err
    assert "a second answer" in out  # the REPL went on, in the same session
    assert len(fake.requests) == 2
    history = [text for role, text in fake.requests[1].contents]
    assert history[0] == "tell me a story" and history[-1] == "and now?"
    assert history[1].startswith("Once upon") and history[1].endswith("[interrupted: the client disconnected]")

"""`raictl chat` and `raictl sessions` against the real LLM API (mock engine) and the real RAI API.

Both services run as child processes on free ports for the whole module (SQLite in a temp folder);
each test has its own RAICTL_HOME (the autouse fixture), hence its own local account.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from raictl.cli import app
from tests.support import (TEST_MARKER, ServiceProcess, ctrl_c_as_at_a_terminal, free_port, http, mock_llm_api,
                           processes_with_marker, run_sql, service_env, wait_until)

MOCK_REPLY = re.compile(r'^\[mock\] reply to "(?P<quoted>.*)" \(messages: (?P<n>\d+), earlier: (?P<earlier>\d+), '
                        r"system prompt: (?:yes|no), remembered facts: (?P<facts>\d+), recalled: \d+\)$", re.S)


def upgrade(url: str) -> None:
    from alembic import command

    from migrations import alembic_config

    command.upgrade(alembic_config(url), "head")


def start_rai_api(home: Path, port: int, llm_api_url: str, marker: str) -> ServiceProcess:
    url = f"sqlite:///{home / 'rai.db'}"
    upgrade(url)
    env = service_env(home, RAI_DATABASE_URL=url, RAI_API_PORT=str(port), LLM_API_URL=llm_api_url,
                      RAI_SECRET_KEY=uuid.uuid4().hex, **{TEST_MARKER: marker})
    return ServiceProcess("services.rai_api", port, env, log=home / "rai_api.log").start()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The real LLM API (mock engine) and RAI API, shared by this module's tests."""
    home = tmp_path_factory.mktemp("chat-stack")
    marker = f"chat-stack-{uuid.uuid4().hex}"  # module-scoped: checked here, not by the per-test fixture
    llm_port, rai_port = free_port(), free_port()
    llm = ServiceProcess("services.llm_api", llm_port,
                         service_env(home, LLM_API_PORT=str(llm_port), LLM_ENGINE="mock", **{TEST_MARKER: marker}),
                         log=home / "llm_api.log").start()
    try:
        rai = start_rai_api(home, rai_port, f"http://127.0.0.1:{llm_port}", marker)
    except BaseException:
        llm.stop()
        raise
    yield {"rai": rai, "llm": llm}
    rai.stop()
    llm.stop()
    assert not processes_with_marker(marker)


@pytest.fixture
def on_stack(stack, monkeypatch):
    """Point raictl (this test's RAICTL_HOME) at the module's RAI API."""
    monkeypatch.setenv("RAI_API_PORT", str(stack["rai"].port))
    return stack


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output, result.output
    return result


def mock(reply: str) -> re.Match:
    match = MOCK_REPLY.match(reply.strip())
    assert match, f"not a mock engine reply: {reply!r}"
    return match


def replies(stdout: str) -> list[re.Match]:
    """The mock replies printed by a REPL run, in order (prompts stripped)."""
    lines = re.split(r"(?:>>> |\.\.\. )+", stdout)
    return [mock(line) for line in lines if line.strip().startswith("[mock]")]


# ---------------------------------------------------------------- one-shot

def test_one_shot_prints_exactly_the_reply(on_stack):
    result = run("chat", "hello there")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    reply = mock(result.stdout)
    assert reply["quoted"] == "hello there" and reply["n"] == "1"
    assert "mock engine" in result.stderr and "Gemini" in result.stderr


def test_the_mock_note_comes_only_with_a_mock_reply(on_stack):
    """Not for a memory command answered from the database, nor before an error (no reply at all)."""
    remembered = run("chat", "remember that my tea is green")
    assert remembered.exit_code == 0 and remembered.stdout.startswith("OK, I will remember")
    assert remembered.stderr == ""
    failed = run("chat", "--session", "no-such-id", "hi")
    assert failed.exit_code == 1 and "mock engine" not in failed.stderr, failed.stderr


def test_json_prints_the_whole_response_object(on_stack):
    result = run("chat", "--json", "hello")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["status"] == "success" and document["session_id"]
    assert mock(document["response"])["quoted"] == "hello"


def test_continue_keeps_the_context_and_a_new_chat_starts_fresh(on_stack):
    first = json.loads(run("chat", "--json", "one").stdout)
    second = json.loads(run("chat", "--json", "-c", "two").stdout)
    assert second["session_id"] == first["session_id"]
    assert int(mock(second["response"])["n"]) > int(mock(first["response"])["n"])
    fresh = json.loads(run("chat", "--json", "three").stdout)
    assert fresh["session_id"] != first["session_id"] and mock(fresh["response"])["n"] == "1"
    back = json.loads(run("chat", "--json", "--session", first["session_id"], "four").stdout)
    assert back["session_id"] == first["session_id"]
    assert int(mock(back["response"])["n"]) > int(mock(second["response"])["n"])


def test_continue_and_session_together_is_a_usage_error(on_stack):
    result = run("chat", "-c", "--session", "abc", "hi")
    assert result.exit_code == 2 and "either --continue or --session" in result.stderr


def test_message_from_stdin_and_usage_errors(on_stack):
    result = run("chat", "-", input="line one\nline two\n")
    assert result.exit_code == 0 and mock(result.stdout)["quoted"] == "line one\nline two"
    for args, expected in ((["chat", "--json"], "--json needs a MESSAGE"), (["chat", "  "], "the message is empty")):
        result = run(*args)
        assert result.exit_code == 2 and f"error: {expected}" in result.stderr and result.stdout == ""


# ---------------------------------------------------------------- credentials and token

def test_local_account_is_created_once_with_mode_0600(on_stack, isolated):
    home = isolated / ".raictl"
    assert run("chat", "hi").exit_code == 0
    credentials = home / "credentials.json"
    first = credentials.read_text()
    for name in ("credentials.json", "token.json"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    assert run("chat", "-c", "again").exit_code == 0
    assert credentials.read_text() == first  # the same account, not a new one per run
    listed = json.loads(run("sessions", "--json").stdout)["sessions"]
    assert len(listed) == 1
    assert json.loads(first)["password"] not in (run("sessions").output + run("chat", "x").output)


def test_first_chats_racing_on_a_fresh_home_share_one_account(on_stack, isolated):
    env = {**os.environ, "RAI_API_PORT": str(on_stack["rai"].port), "PYTHONPATH": str(Path(__file__).parent.parent)}
    racers = [subprocess.Popen([sys.executable, "-m", "raictl", "chat", f"racer {n}"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(3)]
    outputs = [racer.communicate(timeout=30) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0, 0], outputs
    assert sorted(mock(out)["quoted"] for out, _ in outputs) == ["racer 0", "racer 1", "racer 2"]
    assert len(json.loads(run("sessions", "--json").stdout)["sessions"]) == 3  # one user owns all three


def test_a_rejected_token_is_renewed_once(on_stack, isolated):
    token_file = isolated / ".raictl" / "token.json"
    assert run("chat", "hi").exit_code == 0
    cached = json.loads(token_file.read_text())
    token_file.write_text(json.dumps({**cached, "access_token": cached["access_token"][:-6] + "forged"}))
    result = run("chat", "-c", "still me?")
    assert result.exit_code == 0, result.output
    assert int(mock(result.stdout)["n"]) > 1  # the same user's session: the renewed token is theirs
    assert not json.loads(token_file.read_text())["access_token"].endswith("forged")


def test_env_credentials_register_then_refuse_a_wrong_password(on_stack, monkeypatch):
    name = f"user_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RAI_USER", name)
    monkeypatch.setenv("RAI_PASSWORD", "correct horse battery")
    assert run("chat", "hi").exit_code == 0
    monkeypatch.setenv("RAI_PASSWORD", "wrong password here")
    (Path(os.environ["RAICTL_HOME"]) / "token.json").unlink()
    result = run("chat", "hi")
    assert result.exit_code == 1
    assert f"refused the password of {name}" in result.stderr and "hint: check RAI_PASSWORD" in result.stderr
    assert "wrong password here" not in result.output


def test_a_session_of_another_user_is_not_reachable(on_stack, monkeypatch):
    monkeypatch.setenv("RAI_USER", f"alice_{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("RAI_PASSWORD", "alice's password")
    session_id = json.loads(run("chat", "--json", "alice's secret").stdout)["session_id"]
    monkeypatch.setenv("RAI_USER", f"bob_{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("RAI_PASSWORD", "bob's password!")
    for args in (["sessions", "show", session_id], ["chat", "--session", session_id, "let me in"],
                 ["sessions", "delete", session_id]):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "alice's secret" not in result.output
        assert "hint: `raictl sessions` lists your sessions" in result.stderr
    assert session_id not in run("sessions", "--json").stdout
    status, _ = http("GET", on_stack["rai"].url(f"/api/sessions/{session_id}/messages"))
    assert status == 401


def test_sessions_list_show_and_delete(on_stack):
    long_message = "keep this " + "and a very long first message that makes a long title " * 3
    session_id = json.loads(run("chat", "--json", long_message).stdout)["session_id"]
    assert run("chat", "-c", "keep this").exit_code == 0
    row = next(line for line in run("sessions").stdout.splitlines() if session_id in line)  # never cut
    assert row.split()[0] == "*" and " 4 " in row  # the last session, with its four messages
    shown = json.loads(run("sessions", "show", session_id, "--json").stdout)
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"] * 2
    assert shown["messages"][2]["content"] == "keep this"
    shown_text = run("sessions", "show", session_id)
    assert "keep this" in shown_text.stdout
    assert shown["usage"] == {"input_tokens": 0, "output_tokens": 0}  # the mock engine reports no tokens
    assert [m["usage"] for m in shown["messages"] if m["role"] == "assistant"] == [
        {"input_tokens": None, "output_tokens": None}] * 2
    assert "tokens: 0 in, 0 out" in shown_text.stderr
    assert run("sessions", "delete", session_id).exit_code == 0
    assert session_id not in run("sessions", "list", "--json").stdout
    continued = run("chat", "-c", "after delete")  # -c forgets a deleted session: a new one starts
    assert continued.exit_code == 0 and mock(continued.stdout)["n"] == "1"


def test_system_prompt_kept_with_the_new_session(on_stack):
    started = json.loads(run("chat", "--json", "-s", "Answer like a pirate.", "ahoy").stdout)
    assert run("chat", "-c", "and again").exit_code == 0
    shown = json.loads(run("sessions", "show", started["session_id"], "--json").stdout)
    assert shown["system_prompt"] == "Answer like a pirate." and len(shown["messages"]) == 4
    assert "system: Answer like a pirate." in run("sessions", "show", started["session_id"]).stdout
    for extra in (["-c"], ["--session", started["session_id"]]):
        refused = run("chat", "-s", "Be brief.", *extra, "hi")
        assert refused.exit_code == 2 and "--system starts a new session" in refused.stderr
    repl = run("chat", "--system", "Be brief.", input="hello\n/new\nagain\n/exit\n")
    ids = {s["id"]: s for s in json.loads(run("sessions", "--json").stdout)["sessions"]}
    kept = [json.loads(run("sessions", "show", sid, "--json").stdout)["system_prompt"] for sid in ids]
    assert repl.exit_code == 0 and kept.count("Be brief.") == 2  # both sessions the REPL started keep it


def test_usage_after_each_reply_on_stderr(on_stack):
    asked = run("chat", "--usage", "hello")
    assert asked.exit_code == 0 and mock(asked.stdout)
    assert asked.stderr.strip().endswith("tokens: not reported by this engine (the mock counts characters)")
    remembered = run("chat", "--usage", "remember that I like tea")
    assert "tokens: none (answered from the database, not by a model)" in remembered.stderr
    repl = run("chat", "--usage", input="hello\nwhat do you remember?\n/exit\n")
    assert repl.stderr.count("tokens: ") == 2 and "tokens: " not in repl.stdout


def test_markdown_is_rendered_on_a_terminal_and_plain_when_piped_or_asked(on_stack):
    import pty

    env = {**os.environ, "COLUMNS": "200"}
    piped = subprocess.run([sys.executable, "-m", "raictl", "chat", "**bold** and `code`"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert '"**bold** and `code`"' in piped.stdout  # the reply exactly as sent: it quotes the message
    for extra, rendered in (([], True), (["--plain"], False)):
        master, slave = pty.openpty()
        proc = subprocess.run([sys.executable, "-m", "raictl", "chat", *extra, "**bold** and `code`"], env=env,
                              stdout=slave, stderr=subprocess.PIPE, timeout=60)
        os.close(slave)
        shown = os.read(master, 65536).decode()
        os.close(master)
        assert proc.returncode == 0, proc.stderr
        assert ("**bold**" not in shown and "\x1b[1mbold" in shown) == rendered, shown


# ---------------------------------------------------------------- the REPL

def test_repl_multiline_input_history_sessions_and_new(on_stack):
    script = '"""\nfirst line\nsecond line\n"""\n/history\n/sessions\n/new\nfresh start\n/exit\nnever sent\n'
    result = run("chat", input=script)
    assert result.exit_code == 0, result.output
    sent = replies(result.stdout)
    assert [r["quoted"] for r in sent] == ["first line\nsecond line", "fresh start"]
    assert sent[1]["n"] == "1"  # /new started a fresh session
    assert "you: first line\nsecond line" in result.stdout
    assert len(json.loads(run("sessions", "--json").stdout)["sessions"]) == 2


def test_repl_continues_the_last_session_and_ends_at_end_of_input(on_stack):
    assert run("chat", "before the repl").exit_code == 0
    result = run("chat", "-c", input="in the repl\n")  # no /exit: end of input (Ctrl-D) leaves
    assert result.exit_code == 0, result.output
    assert result.stderr.endswith("/exit leaves\n\n")  # Ctrl-D ends the prompt's line
    assert int(replies(result.stdout)[0]["n"]) > 1


def test_repl_remember_and_forget_round_trip(on_stack):
    script = ("before?\n/remember my cat is called Tom\nhow are you?\n/forget my cat is called Tom\n"
              "and now?\n/remember\n/nonsense\n/exit\n")
    result = run("chat", input=script)
    assert result.exit_code == 0, result.output
    facts = {r["quoted"]: int(r["facts"]) for r in replies(result.stdout)}
    assert facts == {"before?": 0, "how are you?": 1, "and now?": 0}
    assert "remember that my cat is called Tom" in result.stdout  # the API's confirmation
    assert "usage: /remember TEXT" in result.stderr and "unknown command /nonsense" in result.stderr


# ---------------------------------------------------------------- failures

def test_stack_down_names_the_addresses_tried_and_says_raictl_up(monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("RAI_API_PORT", str(port))
    result = run("chat", "hello")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: the RAI API is not reachable at http://127.0.0.1:{port}, http://[::1]:{port}",
        "hint: run `raictl up`"]


def test_the_supervisors_record_of_the_port_is_followed(on_stack, isolated, monkeypatch):
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))  # the settings changed since `raictl up`
    record = {"state": "running", "port": on_stack["rai"].port, "hosts": ["::1"]}
    (isolated / ".raictl").mkdir()
    (isolated / ".raictl" / "state.json").write_text(json.dumps({"version": 1, "services": {"rai_api": record}}))
    result = run("chat", "hello")
    assert result.exit_code == 0, result.output
    assert mock(result.stdout)["quoted"] == "hello"


def test_stack_down_says_what_the_supervisor_last_saw(isolated, monkeypatch):
    port = free_port()
    monkeypatch.setenv("RAI_API_PORT", str(port))
    record = {"state": "fatal", "port": port, "hosts": ["127.0.0.1"], "reason": "exited 5 times within 60s"}
    (isolated / ".raictl").mkdir()
    (isolated / ".raictl" / "state.json").write_text(json.dumps({"version": 1, "services": {"rai_api": record}}))
    result = run("chat", "hello")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: the RAI API is not reachable at http://127.0.0.1:{port}, http://[::1]:{port}; "
        "`raictl up` left it fatal: exited 5 times within 60s",
        "hint: `raictl logs rai_api` shows why, then run `raictl up`"]


def test_a_listener_that_never_answers_is_not_called_down(monkeypatch):
    import socket

    from raictl.chat.client import locate
    from raictl.errors import RaictlError
    from raishared.settings import load_settings

    with socket.socket() as squatter:  # the kernel completes the handshake; nobody ever answers
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(8)
        monkeypatch.setenv("RAI_API_PORT", str(squatter.getsockname()[1]))
        with pytest.raises(RaictlError) as caught:
            locate(load_settings(), timeout=0.3)
    assert "accepted a connection but its /api/health did not answer" in caught.value.message
    assert "raictl logs rai_api" in caught.value.hint


def test_another_service_on_the_rai_api_port_is_named(on_stack, monkeypatch):
    monkeypatch.setenv("RAI_API_PORT", str(on_stack["llm"].port))  # the log's port mix-up
    result = run("chat", "hello")
    assert result.exit_code == 1 and "answers, but not as the RAI API (service: llm-api)" in result.stderr


def test_llm_api_down_shows_the_503_reason(tmp_path, monkeypatch):
    rai = start_rai_api(tmp_path, free_port(), f"http://127.0.0.1:{free_port()}", os.environ[TEST_MARKER])
    try:
        monkeypatch.setenv("RAI_API_PORT", str(rai.port))
        result = run("chat", "hello")
    finally:
        rai.stop()
    assert result.exit_code == 1 and result.stdout == ""
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith("error: ") and "LLM API" in error
    assert hint == "hint: `raictl status` shows the LLM API, `raictl logs llm_api` its errors; `raictl up` starts it"


def test_a_schema_mismatch_names_the_command_that_fixes_it(tmp_path, monkeypatch):
    """The log's missing column: one error naming the state and `raictl migrate --repair`, not HTTP 503."""
    llm = mock_llm_api(tmp_path)
    rai = start_rai_api(tmp_path, free_port(), llm.url(""), os.environ[TEST_MARKER])
    try:
        run_sql(f"sqlite:///{tmp_path / 'rai.db'}", "ALTER TABLE users DROP COLUMN remembered_facts")
        monkeypatch.setenv("RAI_API_PORT", str(rai.port))
        result = run("chat", "remember that tea is green")
    finally:
        rai.stop()
        llm.stop()
    assert result.exit_code == 1 and result.stdout == ""
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith("error: ") and "run `raictl migrate --repair`" in error, error
    assert hint == "hint: `raictl doctor db` shows where the schema stands"


class _JsonHandler(BaseHTTPRequestHandler):
    """A quiet handler for the tests' stand-in servers: `_json(body, status)` answers with JSON."""

    def _json(self, body, status=200):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class _HangingLlm(_JsonHandler):
    """An LLM API whose health is fine and whose generate waits until the test releases it."""

    def do_GET(self):
        self._json({"status": "ok", "service": "llm-api", "engine": "mock", "model": "hanging",
                    "fallback_reason": None, "last_error": None})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.generating.set()
        self.server.release.wait(30)
        self._json({"text": "too late", "engine": "mock", "model": "hanging", "usage": {}})


def test_ctrl_c_interrupts_a_pending_reply_not_the_repl(tmp_path, monkeypatch):
    llm = ThreadingHTTPServer(("127.0.0.1", free_port()), _HangingLlm)
    llm.generating, llm.release = threading.Event(), threading.Event()
    threading.Thread(target=llm.serve_forever, daemon=True).start()
    rai = start_rai_api(tmp_path, free_port(), f"http://127.0.0.1:{llm.server_port}", os.environ[TEST_MARKER])
    try:
        env = {**os.environ, "RAI_API_PORT": str(rai.port), "PYTHONPATH": str(Path(__file__).parent.parent)}
        repl = subprocess.Popen([sys.executable, "-m", "raictl", "chat"], env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=ctrl_c_as_at_a_terminal)
        repl.stdin.write("are you there?\n")
        repl.stdin.flush()
        wait_until(llm.generating.is_set, 20, what="the chat request to reach the LLM API")
        repl.send_signal(signal.SIGINT)
        out, err = repl.communicate("/exit\n", timeout=20)
    finally:
        llm.release.set()
        rai.stop()
        llm.shutdown()
        llm.server_close()
    assert repl.returncode == 0, err
    assert "(interrupted) reply dropped" in err and "Traceback" not in err
    assert "too late" not in out


def _tty_session(env: dict[str, str], keys: list[bytes]) -> bytes:
    """Run the REPL on a pseudo-terminal, typing each of `keys` at a fresh prompt; returns all it showed."""
    import fcntl
    import pty
    import select
    import termios

    master, slave = pty.openpty()
    # The terminal becomes the child's controlling one, so a typed Ctrl-C is a real SIGINT.
    proc = subprocess.Popen([sys.executable, "-m", "raictl", "chat"], env=env, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True, start_new_session=True,
                            preexec_fn=lambda: (ctrl_c_as_at_a_terminal(), fcntl.ioctl(0, termios.TIOCSCTTY, 0)))
    os.close(slave)
    shown = bytearray()

    def prompts() -> int:
        while select.select([master], [], [], 0)[0]:
            try:
                shown.extend(os.read(master, 4096))
            except OSError:  # EIO: the child closed the terminal
                break
        return shown.count(b">>> ")
    try:
        for number, key in enumerate(keys, start=1):
            try:
                wait_until(lambda: prompts() >= number, 20, what=f"prompt {number}")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the terminal showed: {bytes(shown)!r}") from None
            os.write(master, key)
        proc.wait(20)
        prompts()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return bytes(shown)


def test_a_terminal_gets_line_editing_and_history_kept_0600(on_stack, isolated):
    env = {**os.environ, "RAI_API_PORT": str(on_stack["rai"].port), "PYTHONPATH": str(Path(__file__).parent.parent)}
    shown = _tty_session(env, [b"half a line\x03", b"from a terminal\r", b"/exit\r"])
    assert b"(Ctrl-C) use /exit or Ctrl-D to leave" in shown  # Ctrl-C at the prompt drops the line only
    assert b'reply to "from a terminal"' in shown and b"half a line" not in shown.split(b"(Ctrl-C)")[1]
    history = isolated / ".raictl" / "chat_history"
    assert "from a terminal" in history.read_text()
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    shown = _tty_session(env, [b"\x1b[A\x1b[A\r", b"/exit\r"])  # up, up: the last run's message
    assert b'[mock] reply to "from a terminal" (messages: 1' in shown


# ---------------------------------------------------------------- what a demanding user tries (QA)

def one_error(result, exit_code: int = 1) -> str:
    """The single `error:` line of a failed run, after checking its shape: exit code, a hint, stdout empty."""
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("note: ")]
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), lines
    return lines[0]


@pytest.mark.parametrize("args", [["sessions", "show", "no-such-id"], ["sessions", "delete", "no-such-id"],
                                  ["sessions", "show", "no-such-id", "--json"],
                                  ["chat", "--session", "no-such-id", "hi"],
                                  ["chat", "--json", "--session", "no-such-id", "hi"]])
def test_an_unknown_session_id_is_one_error_and_json_prints_nothing(on_stack, args):
    assert "no session 'no-such-id'" in one_error(run(*args))


def test_a_session_id_breaking_the_rules_names_the_rule(on_stack):
    assert "session_id must be a session id string of at most 36" in one_error(run("chat", "--session", "x" * 37, "hi"))
    assert "--session needs a session id" in one_error(run("chat", "--session", "", "hi"), exit_code=2)
    for args in (["sessions", "show", "a/b"], ["sessions", "delete", "../x"], ["sessions", "show", " "]):
        assert "a session id holds no '/' and is not blank" in one_error(run(*args))


def test_continue_of_a_session_gone_elsewhere_fails_once_then_starts_anew(on_stack, isolated):
    session_id = json.loads(run("chat", "--json", "hi").stdout)["session_id"]
    other_home = {**os.environ, "RAICTL_HOME": str(isolated / "elsewhere")}  # same account, another client
    shutil.copytree(isolated / ".raictl", other_home["RAICTL_HOME"])
    assert CliRunner().invoke(app, ["sessions", "delete", session_id], env=other_home).exit_code == 0
    result = run("chat", "-c", "still there?")
    assert f"no session '{session_id}'" in one_error(result)
    assert "the next `raictl chat -c` starts a new session" in result.stderr
    fresh = run("chat", "-c", "then anew")
    assert fresh.exit_code == 0 and mock(fresh.stdout)["n"] == "1"


def test_continue_without_an_earlier_session_says_it_starts_a_new_one(on_stack):
    result = run("chat", "-c", "first ever")
    assert result.exit_code == 0 and mock(result.stdout)["n"] == "1"
    assert "no earlier session to continue" in result.stderr


def test_json_errors_leave_stdout_empty_when_the_stack_is_down(monkeypatch):
    monkeypatch.setenv("RAI_API_PORT", str(free_port()))
    for args in (["chat", "--json", "hi"], ["sessions", "--json"], ["sessions", "show", "x", "--json"]):
        assert "the RAI API is not reachable" in one_error(run(*args))


def test_a_message_over_the_limit_is_one_error(on_stack):
    assert "message must hold 1-8000 characters, got 8001" in one_error(run("chat", "x" * 8001))
    assert mock(run("chat", "x" * 8000).stdout)["n"] == "1"


def test_stdin_that_is_not_utf8_is_a_usage_error(on_stack):
    result = CliRunner().invoke(app, ["chat", "-"], input=b"caf\xe9 \xff")
    assert "the message on stdin is not UTF-8 text (byte 0xe9 at offset 3)" in one_error(result, exit_code=2)
    result = CliRunner().invoke(app, ["chat", "-"], input="café ☕\n".encode())
    assert mock(result.stdout)["quoted"] == "café ☕"


def test_half_set_or_rule_breaking_env_credentials_are_one_error(on_stack, monkeypatch):
    monkeypatch.setenv("RAI_USER", "someone")
    assert "RAI_USER and RAI_PASSWORD must be set together" in one_error(run("chat", "hi"))
    monkeypatch.setenv("RAI_PASSWORD", "short")
    line = one_error(run("chat", "hi"))
    assert "registering someone: password must be 8-128 characters" in line
    assert "hint: choose RAI_USER and RAI_PASSWORD" in run("chat", "hi").stderr


def test_a_changed_password_is_checked_not_hidden_by_the_cached_token(on_stack, monkeypatch):
    monkeypatch.setenv("RAI_USER", f"carol_{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("RAI_PASSWORD", "the right password")
    assert run("chat", "hi").exit_code == 0
    monkeypatch.setenv("RAI_PASSWORD", "not the password")  # token.json still holds a valid token
    assert "refused the password of carol_" in one_error(run("chat", "hi"))
    monkeypatch.setenv("RAI_PASSWORD", "the right password")
    assert run("chat", "hi").exit_code == 0
    assert "the right password" not in (Path(os.environ["RAICTL_HOME"]) / "token.json").read_text()


@pytest.mark.parametrize("content", ["garbage{", "[]", '{"expires_at": "soon"}', '{"expires_at": [1]}',
                                     '{"access_token": 5, "expires_at": 1e300}', '{"salt": 7}'])
def test_a_damaged_token_file_means_a_fresh_login(on_stack, isolated, content):
    token_file = isolated / ".raictl" / "token.json"
    assert run("chat", "hi").exit_code == 0
    cached = json.loads(token_file.read_text())
    damaged = json.loads(content) if content.startswith("{") else None
    token_file.write_text(json.dumps({**cached, **damaged}) if damaged else content)
    result = run("chat", "-c", "again")
    assert result.exit_code == 0, result.output
    assert int(mock(result.stdout)["n"]) > 1  # the same account and session as before
    renewed = json.loads(token_file.read_text())
    assert isinstance(renewed["expires_at"], float) and renewed["password_fingerprint"]  # rewritten whole


@pytest.mark.parametrize("content", ["garbage{", "[]", '{"username": 5, "password": "x"}', "\xff"])
def test_a_damaged_credentials_file_is_one_error_saying_what_to_do(on_stack, isolated, content):
    (isolated / ".raictl").mkdir()
    (isolated / ".raictl" / "credentials.json").write_text(content, encoding="latin-1")
    line = one_error(run("chat", "hi"))
    assert "credentials.json does not hold a username and a password" in line
    assert "delete it" in run("chat", "hi").stderr


def test_a_directory_in_place_of_the_credentials_file_is_one_error(on_stack, isolated):
    (isolated / ".raictl" / "credentials.json").mkdir(parents=True)
    assert "cannot read" in one_error(run("chat", "hi"))


def test_secret_files_readable_by_others_are_made_0600_and_the_user_told(on_stack, isolated):
    home = isolated / ".raictl"
    assert run("chat", "hi").exit_code == 0
    for name in ("credentials.json", "token.json"):
        (home / name).chmod(0o644)
    result = run("chat", "-c", "still mine?")
    assert result.exit_code == 0 and int(mock(result.stdout)["n"]) > 1  # the same account, not a new one
    for name in ("credentials.json", "token.json"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
        assert f"{name} was mode 0644; made it 0600" in result.stderr
    assert "made it 0600" not in run("chat", "-c", "again").stderr  # said once, when it was fixed


class _AlwaysUnauthorized(_JsonHandler):
    """A RAI API that hands out tokens and then rejects every one of them."""

    def do_GET(self):
        self._json({"service": "rai-chat-api", "status": "ok", "llm_engine": "gemini"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hits.append(self.path)
        if self.path == "/api/auth/login":
            self._json({"access_token": f"token-{len(self.server.hits)}", "token_type": "bearer",
                        "expires_in": 3600})
        else:
            self._json({"error": "invalid_token", "message": "the access token is not valid: log in again"}, 401)


def test_a_token_rejected_again_after_renewal_is_an_error_not_a_loop(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysUnauthorized)
    server.hits = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("RAI_API_PORT", str(server.server_port))
        monkeypatch.setenv("RAI_API_HOSTS", "127.0.0.1")
        result = run("chat", "hi")
    finally:
        server.shutdown()
        server.server_close()
    assert server.hits == ["/api/auth/login", "/api/chat", "/api/auth/login", "/api/chat"]
    assert "chat: the RAI API answered HTTP 401: the access token is not valid" in one_error(result)


def test_gemini_rate_limited_reaches_the_user_in_one_line(tmp_path, monkeypatch):
    from tests.fake_gemini import FakeGemini

    marker, llm_port = os.environ[TEST_MARKER], free_port()
    with FakeGemini() as fake:
        fake.fail(429)
        llm = ServiceProcess("services.llm_api", llm_port, service_env(
            tmp_path, LLM_API_PORT=str(llm_port), LLM_ENGINE="gemini", GEMINI_API_KEY="AIza-test-key-0123456789",
            GEMINI_BASE_URL=fake.base_url, **{TEST_MARKER: marker}), log=tmp_path / "llm_api.log").start()
        try:
            rai = start_rai_api(tmp_path, free_port(), f"http://127.0.0.1:{llm_port}", marker)
            try:
                monkeypatch.setenv("RAI_API_PORT", str(rai.port))
                result = run("chat", "hello")
            finally:
                rai.stop()
        finally:
            llm.stop()
    line = one_error(result)
    assert "Gemini rate limit or quota exceeded (HTTP 429)" in line
    assert "AIza-test-key" not in result.output

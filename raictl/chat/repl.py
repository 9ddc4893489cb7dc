"""The chat REPL: reads input, runs /commands, sends everything else through the chat client and has
a ChatView (raictl/render.py) show it; it prints nothing itself. Keeps <home>/chat_history (0600).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from raictl.chat.client import ChatClient, ReplyStream, writing
from raictl.errors import RaictlError
from raishared.private_files import create_private

HISTORY_FILE = "chat_history"


class ChatView(Protocol):
    """What the REPL shows; raictl/render.py implements it (the REPL itself prints nothing)."""

    def reply(self, response: dict[str, Any]) -> None: ...
    def stream(self, reply: ReplyStream) -> None: ...
    def note(self, message: str) -> None: ...
    def error(self, exc: RaictlError) -> None: ...
    def sessions(self, sessions: list[dict[str, Any]], current: str | None) -> None: ...
    def history(self, messages: list[dict[str, Any]]) -> None: ...


PROMPT, CONTINUATION = ">>> ", "... "
FENCE = '"""'
HELP = ("/new  start a new session          /sessions  list your sessions\n"
        "/history  this session's messages   /remember TEXT  /forget TEXT\n"
        '/exit or Ctrl-D  leave              """ on a line starts and ends multi-line input\n'
        "Ctrl-C while a reply comes stops it; the session goes on")


def read_line(prompt: str) -> str | None:
    """One line of input (None at end of input): `input()` uses readline on a terminal and
    reads sys.stdin otherwise, which is what Typer's CliRunner `input=` feeds."""
    try:
        return input(prompt)
    except EOFError:
        return None


def enable_line_editing(home: Path) -> Callable[[], None]:
    """Line editing and input history kept in <home>/chat_history (0600); returns the saver to call at exit."""
    try:
        import readline
    except ImportError:  # e.g. a Python built without it: plain input still works
        return lambda: None
    path = home / HISTORY_FILE
    with writing(path):
        create_private(path, "")  # what you typed stays yours
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)

    def save() -> None:
        try:
            readline.write_history_file(path)
        except OSError:
            pass
    return save


class Repl:
    """The interactive loop: reads input, runs /commands, sends everything else as a message."""

    def __init__(self, client: ChatClient, view: ChatView, session_id: str | None = None,
                 read: Callable[[str], str | None] = read_line, system: str | None = None,
                 stream: bool = True) -> None:
        self.client, self.view, self.read, self.stream = client, view, read, stream
        self.session_id, self.system = session_id, system  # `system`: kept by each new session started here
        self.commands: dict[str, Callable[[str], bool]] = {
            "/new": self._new, "/sessions": self._sessions, "/history": self._history,
            "/remember": lambda text: self._wrapped("remember that", text, "/remember TEXT"),
            "/forget": lambda text: self._wrapped("forget", text, "/forget TEXT"),
            "/help": self._help, "/exit": self._exit, "/quit": self._exit, "/bye": self._exit,
        }

    def run(self) -> int:
        """Loop until /exit or end of input; returns the exit code."""
        while True:
            try:
                text = self._read_input()
            except KeyboardInterrupt:  # at the prompt: drop the line, like a shell
                self.view.note("(Ctrl-C) use /exit or Ctrl-D to leave")
                continue
            if text is None:  # Ctrl-D: end the prompt's line, so the shell's prompt starts on its own
                self.view.note("")
                return 0
            if text.strip() and not self.handle(text):
                return 0

    def _read_input(self) -> str | None:
        line = self.read(PROMPT)
        if line is None or not line.strip().startswith(FENCE):
            return line
        first = line.strip()[len(FENCE):]
        if first.endswith(FENCE):  # """one line"""
            return first[:-len(FENCE)]
        lines = [first] if first else []
        while (line := self.read(CONTINUATION)) is not None:  # end of input closes the block: nothing is lost
            if line.rstrip().endswith(FENCE):
                lines.append(line.rstrip()[:-len(FENCE)])
                break
            lines.append(line)
        return "\n".join(lines).strip("\n")

    def handle(self, text: str) -> bool:
        """Run one input; False when the REPL should end."""
        head, _, rest = text.strip().partition(" ")
        if head.startswith("/") and "\n" not in head:
            command = self.commands.get(head.lower())
            if command is None:
                self.view.note(f"unknown command {head}; /help lists them")
                return True
            return command(rest.strip())
        return self._send(text)

    def _send(self, message: str) -> bool:
        reply: ReplyStream | None = None
        try:
            if self.stream:
                reply = self.client.chat_stream(message, self.session_id, self.system)
                self.view.stream(reply)
            else:
                response = self.client.chat(message, self.session_id, self.system)
                self.session_id = response.get("session_id") or self.session_id
                self.view.reply(response)
        except KeyboardInterrupt:  # the reply, not the REPL
            self.view.note("(interrupted) reply stopped: what arrived is kept in the session"
                           if reply is not None and reply.text else "(interrupted) reply dropped")
        except RaictlError as exc:
            self.view.error(exc)
        if reply is not None and reply.session_id:
            self.session_id = reply.session_id
        return True

    def _wrapped(self, prefix: str, text: str, usage: str) -> bool:
        if not text:
            self.view.note(f"usage: {usage}")
            return True
        return self._send(f"{prefix} {text}")

    def _new(self, _: str) -> bool:
        self.session_id = None
        self.view.note("new session: the next message starts it")
        return True

    def _sessions(self, _: str) -> bool:
        return self._guarded(lambda: self.view.sessions(self.client.sessions(), self.session_id))

    def _history(self, _: str) -> bool:
        session_id = self.session_id
        if not session_id:
            self.view.note("no messages yet in this session")
            return True
        return self._guarded(lambda: self.view.history(self.client.messages(session_id)))

    def _guarded(self, action: Callable[[], None]) -> bool:
        try:
            action()
        except RaictlError as exc:
            self.view.error(exc)
        except KeyboardInterrupt:
            self.view.note("(interrupted)")
        return True

    def _help(self, _: str) -> bool:
        self.view.note(HELP)
        return True

    def _exit(self, _: str) -> bool:
        return False

"""The only module that knows rich: tables, marks and --json documents for every command.

Core modules return values; each command passes them here. Sections below belong to command groups.
rich is imported inside the functions, so importing this module costs nothing at start-up.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MARKS = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]", "skip": "[dim]-[/]"}


def console(stderr: bool = False):
    """A rich Console on stdout (or stderr); plain when the stream is not a terminal."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(document: Any) -> None:
    """Exactly one JSON document on stdout, nothing else there."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def note(message: str) -> None:
    """A dim note on stderr (progress, advice): never mixed into stdout."""
    console(stderr=True).print(f"[dim]{message}[/]")


# ---------------------------------------------------------------- chat: `raictl chat`, `raictl sessions`

def chat_reply(response: dict[str, Any]) -> None:
    """Exactly the reply text on stdout (never read as markup: a reply may hold [brackets])."""
    sys.stdout.write(str(response.get("response", "")).rstrip("\n") + "\n")
    sys.stdout.flush()


def chat_engine_note(engine: str | None) -> None:
    """Once per chat: say so when replies come from the mock engine rather than a model."""
    if engine == "mock":
        note("note: replies come from the mock engine because no Gemini key is set "
             "(set GEMINI_API_KEY and run `raictl restart`)")


def chat_error(exc) -> None:
    """A failed exchange inside the REPL: the same two stderr lines as the CLI's, and the REPL goes on."""
    sys.stderr.write(f"error: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
    sys.stderr.flush()


def _session_id(session: dict[str, Any]) -> str:
    return str(session.get("id") or session.get("session_id") or "")


def chat_sessions(sessions: list[dict[str, Any]], current: str | None = None) -> None:
    """The user's sessions as a table, newest activity as the API orders them; the current one marked."""
    if not sessions:
        note("no sessions yet: `raictl chat MESSAGE` starts one")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("")
    table.add_column("id", no_wrap=True)  # an id is there to be copied: never folded
    table.add_column("title", overflow="ellipsis", no_wrap=True)
    table.add_column("msgs", justify="right")
    table.add_column("updated", no_wrap=True)
    for session in sessions:
        sid = _session_id(session)
        count = session.get("message_count", session.get("messages", ""))
        table.add_row("*" if sid == current else "", sid, str(session.get("title") or ""),
                      str(count if not isinstance(count, list) else len(count)),
                      str(session.get("updated_at") or session.get("created_at") or "").replace("T", " "))
    console().print(table)


def chat_history(messages: list[dict[str, Any]]) -> None:
    """A session's messages, oldest first, each labelled with who said it."""
    if not messages:
        note("no messages in this session")
        return
    out = console()
    for message in messages:
        who = "you" if message.get("role") == "user" else str(message.get("role") or "?")
        out.print(f"[bold]{who}[/]: ", end="")
        out.print(str(message.get("content", "")), markup=False)


class ChatView:
    """What the REPL shows (raictl.chat.ChatView), drawn with the functions above."""

    def reply(self, response: dict[str, Any]) -> None:
        chat_reply(response)

    def note(self, message: str) -> None:
        from rich.markup import escape

        note(escape(message))  # a note may quote what was typed: never read it as markup

    def error(self, exc) -> None:
        chat_error(exc)

    def sessions(self, sessions: list[dict[str, Any]], current: str | None) -> None:
        chat_sessions(sessions, current)

    def history(self, messages: list[dict[str, Any]]) -> None:
        chat_history(messages)

"""`raictl chat` and `raictl sessions`: thin commands over raictl.chat (client, REPL); drawing is in raictl.render."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Iterator, Optional

import typer

from raictl.errors import RaictlError

if TYPE_CHECKING:
    from raictl.chat.client import ChatClient
    from raictl.chat.repl import ChatView

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


@contextmanager
def _client() -> Iterator[ChatClient]:
    """The chat client; whatever it noticed on the way (a secret file made 0600 again) is shown at the end."""
    from raictl import render
    from raictl.chat.client import ChatClient
    from raishared.settings import load_settings

    client = ChatClient(load_settings())
    try:
        yield client
    finally:
        for text in client.notes:  # rare: only then is rich imported
            render.plain_note(text)


def chat(
    message: Annotated[Optional[str], typer.Argument(
        help="The message to send ('-' reads it from stdin). Without one, an interactive chat opens.")] = None,
    continue_: Annotated[bool, typer.Option("--continue", "-c", help="Continue the last session.")] = False,
    session: Annotated[Optional[str], typer.Option("--session", help="Continue the session with this id.")] = None,
    json_: JsonOption = False,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="The system prompt of the new "
                                                  "session (kept with it, sent on every turn).")] = None,
    usage: Annotated[bool, typer.Option("--usage", help="After each reply, print the tokens it took "
                                        "(in and out) on stderr.")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Print replies as plain text (the default when "
                                        "stdout is not a terminal); else Markdown is rendered.")] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Print each reply once it is complete, "
                                                                 "not as it is generated.")] = False,
) -> None:
    """Chat with the stack: one reply on stdout for MESSAGE, printed as it is generated, else a REPL
    (/help lists its commands)."""
    from raictl import render
    from raictl.chat import client as core

    markdown = not plain and not json_ and sys.stdout.isatty()
    # Replies stream as they are generated when printed as plain text (piped, --plain); Markdown on a
    # terminal is rendered once the reply is complete; --json prints the one document at the end.
    stream = not (no_stream or json_ or markdown)
    if message is None and json_:
        raise RaictlError("--json needs a MESSAGE", hint='e.g. raictl chat --json "hello"', exit_code=2)
    if message == "-":
        message = core.decode_message(sys.stdin.buffer.read())  # `echo hi | raictl chat -` sends "hi"
    if message is not None and not message.strip():
        raise RaictlError("the message is empty", hint='e.g. raictl chat "hello"', exit_code=2)
    with _client() as client:
        session_id = core.start_session(client, continue_, session, system)
        if continue_ and session_id is None:
            render.note("no earlier session to continue (from this RAICTL_HOME): starting a new one")
        if message is None:
            render.chat_engine_note(client.engine, chosen=client.settings.llm_engine == "mock")
            raise typer.Exit(_repl(client, session_id, system, render.ChatView(markdown, usage), stream=stream))
        if not stream:
            response = client.chat(message, session_id, system)
            if core.from_mock(response):  # not for an error, nor a memory command answered from the database
                render.chat_engine_note(client.engine, chosen=client.settings.llm_engine == "mock")
            render.print_json(response) if json_ else render.chat_reply(response, markdown)
            if usage:
                render.reply_usage(response)
            return
        reply = client.chat_stream(message, session_id, system)
        render.chat_stream(reply)
        if reply.engine == "mock":  # a memory command's reply comes from the database: no engine
            render.chat_engine_note("mock", chosen=client.settings.llm_engine == "mock")
    if usage:
        render.reply_usage({"usage": (reply.done or {}).get("usage")})


def _repl(client: ChatClient, session_id: str | None, system: str | None, view: ChatView, stream: bool) -> int:
    from raictl.chat import repl as core

    view.note(f"chatting as {client.credentials.username} in "
              f"{'session ' + session_id if session_id else 'a new session'}; /help lists commands, /exit leaves")
    save_history = core.enable_line_editing(client.home) if sys.stdin.isatty() else (lambda: None)
    try:
        return core.Repl(client, view, session_id, system=system, stream=stream).run()
    finally:
        save_history()


sessions_app = typer.Typer(help="List, show and delete your chat sessions.", add_completion=False)


@sessions_app.callback(invoke_without_command=True)
def sessions(ctx: typer.Context, json_: JsonOption = False) -> None:
    """List, show and delete your chat sessions (without a subcommand: list them)."""
    if ctx.invoked_subcommand is None:
        list_sessions(json_)


@sessions_app.command("list")
def list_sessions(json_: JsonOption = False) -> None:
    """List your chat sessions."""
    from raictl import render

    with _client() as client:
        found, last = client.sessions(), client.last_session()
    render.print_json({"sessions": found}) if json_ else render.chat_sessions(found, last)


@sessions_app.command("show")
def show_session(session_id: Annotated[str, typer.Argument(help="The session's id.")],
                 json_: JsonOption = False) -> None:
    """Show one of your sessions: its system prompt, its messages, and the tokens its replies cost."""
    from raictl import render

    with _client() as client:
        found = client.session(session_id)
    if json_:
        render.print_json({"session_id": session_id, **found})
        return
    render.chat_history(found.get("messages", []), found.get("system_prompt"))
    render.session_usage(found.get("usage"))


@sessions_app.command("delete")
def delete_session(session_id: Annotated[str, typer.Argument(help="The session's id.")],
                   json_: JsonOption = False) -> None:
    """Delete one of your sessions and its messages."""
    from raictl import render

    with _client() as client:
        result = client.delete(session_id)
    render.print_json(result) if json_ else render.note(f"deleted session {session_id}")


def register(app: typer.Typer) -> None:
    """Attach `chat` and the `sessions` group to the raictl app."""
    app.command()(chat)
    app.add_typer(sessions_app, name="sessions")

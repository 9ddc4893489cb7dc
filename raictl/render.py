"""The only module that knows rich: tables, marks and --json documents for every command.

Core modules return values; each command passes them here. Sections below belong to command groups.
rich is imported inside the functions, so importing this module costs nothing at start-up.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from raictl.supervisor import states
from raishared.settings import host_port

if TYPE_CHECKING:
    from raictl.chat.client import ReplyStream
    from rich.console import Console

    from pathlib import Path

    from raictl.doctor.fixes import PlannedFix
    from raictl.doctor.registry import Check, Result
    from raictl.errors import RaictlError
    from raictl.export import Export
    from raictl.migrate import MigrateResult, Plan, RestoreResult
    from raictl.supervisor.control import DownResult, UpResult
    from raictl.supervisor.probes import ListenResult
    from raictl.supervisor.status import Overview, ServiceStatus

MARKS = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]", "skip": "[dim]-[/]"}


def console(stderr: bool = False) -> Console:
    """A rich Console on stdout (or stderr); plain when the stream is not a terminal."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(document: Any) -> None:
    """Exactly one JSON document on stdout, nothing else there."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def error(exc: RaictlError) -> None:
    """A RaictlError as the CLI shows it everywhere: `error: MESSAGE` and `hint: HINT` on stderr, no
    traceback. Plain writes, no rich: every command's failure path passes here."""
    sys.stderr.write(f"error: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
    sys.stderr.flush()


def ask(question: str) -> bool:
    """Ask a yes/no question on stderr and read the answer from stdin (a terminal): only y/yes is a
    yes; end of input or Ctrl-C is a no. Nothing reaches stdout (click's prompt writes a space
    there, which would land in front of a `--json` document)."""
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if not answer.endswith("\n"):
        sys.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes")


def note(message: str) -> None:
    """A dim note on stderr (progress, advice): never mixed into stdout."""
    console(stderr=True).print(f"[dim]{message}[/]")


def plain_note(text: str) -> None:
    """A note whose text is never read as markup: it may quote a path or what was typed ([brackets])."""
    from rich.markup import escape

    note(escape(text))


# ---------------------------------------------------------------- chat: `raictl chat`, `raictl sessions`

def chat_reply(response: dict[str, Any], markdown: bool = False) -> None:
    """The reply on stdout: rendered as Markdown by rich (on a terminal), else exactly its text (never
    read as rich markup: a reply may hold [brackets])."""
    text = str(response.get("response", "")).rstrip("\n")
    if markdown:
        from rich.markdown import Markdown

        console().print(Markdown(text))
        return
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def reply_usage(response: dict[str, Any]) -> None:
    """`tokens: N in, M out` of one reply, on stderr (`raictl chat --usage`)."""
    usage = response.get("usage") or {}
    if isinstance(usage.get("input_tokens"), int):
        text = f"tokens: {usage['input_tokens']} in, {usage.get('output_tokens') or 0} out"
    elif not usage:
        text = "tokens: none (answered from the database, not by a model)"
    else:
        text = "tokens: not reported by this engine (the mock counts characters)"
    sys.stderr.write(_paint(text, "dim", sys.stderr.isatty()) + "\n")
    sys.stderr.flush()


def chat_stream(reply: Iterable[str]) -> None:
    """The reply on stdout as it arrives (never read as markup), ending in one newline exactly as
    chat_reply prints a whole one: trailing newlines wait until more text follows them."""
    pending, wrote = "", False
    try:
        for piece in reply:
            text = pending + piece
            body = text.rstrip("\n")
            pending = text[len(body):]
            if body:
                sys.stdout.write(body)
                sys.stdout.flush()
                wrote = True
    finally:
        if wrote:  # also when stopped (Ctrl-C, an error): what follows starts on its own line
            sys.stdout.write("\n")
            sys.stdout.flush()
    if not wrote:  # an empty reply is still one line
        sys.stdout.write("\n")
        sys.stdout.flush()


def chat_engine_note(engine: str | None, chosen: bool = False) -> None:
    """Once per chat: say so when replies come from the mock engine rather than a model."""
    if engine != "mock":
        return
    text = ("note: replies come from the mock engine because LLM_ENGINE=mock is set" if chosen else
            "note: replies come from the mock engine because no Gemini key or OpenAI-compatible server "
            "is set (set GEMINI_API_KEY or OPENAI_BASE_URL and run `raictl restart`)")
    # Plain ANSI rather than rich: a one-shot `raictl chat "hi"` should not pay rich's import for one line.
    sys.stderr.write(_paint(text, "dim", sys.stderr.isatty()) + "\n")
    sys.stderr.flush()


def _session_id(session: dict[str, Any]) -> str:
    return str(session.get("id") or session.get("session_id") or "")


def chat_sessions(sessions: list[dict[str, Any]], current: str | None = None) -> None:
    """The user's sessions as a table, newest activity as the API orders them; the current one marked."""
    if not sessions:
        note("no sessions yet: `raictl chat MESSAGE` starts one")
        return
    from rich.table import Table

    out = console()
    table = Table(box=None, pad_edge=False)
    ids = [_session_id(session) for session in sessions]
    id_width = max(map(len, ids))
    # An id is there to be copied: never folded or cut; the title gives way instead.
    title_width = max(8, min(40, out.width - (1 + id_width + 4 + 16) - 4 * 2))
    table.add_column("", width=1)
    table.add_column("id", no_wrap=True, width=id_width)
    table.add_column("title", overflow="ellipsis", no_wrap=True, max_width=title_width)
    table.add_column("msgs", justify="right", width=4)
    table.add_column("updated", no_wrap=True, width=16)
    for sid, session in zip(ids, sessions):
        count = session.get("message_count", "")
        updated = str(session.get("updated_at") or session.get("created_at") or "").replace("T", " ")[:16]
        table.add_row("*" if sid == current else "", sid, str(session.get("title") or ""), str(count), updated)
    out.print(table)


def chat_history(messages: list[dict[str, Any]], system_prompt: str | None = None) -> None:
    """A session's messages, oldest first, each labelled with who said it (its system prompt first)."""
    if system_prompt:
        console().print("[dim]system[/]: ", end="")
        console().print(system_prompt, markup=False, style="dim")
    if not messages:
        note("no messages in this session")
        return
    out = console()
    for message in messages:
        who = "you" if message.get("role") == "user" else str(message.get("role") or "?")
        out.print(f"[bold]{who}[/]: ", end="")
        out.print(str(message.get("content", "")), markup=False)


def session_usage(usage: dict[str, Any] | None) -> None:
    """A session's token totals, on stderr (the mock engine and memory commands report none)."""
    usage = usage or {}
    note(f"tokens: {usage.get('input_tokens') or 0} in, {usage.get('output_tokens') or 0} out")


class ChatView:
    """What the REPL shows (raictl.chat.repl.ChatView), drawn with the functions above: each reply as
    Markdown when `markdown`, followed by its tokens when `usage`."""

    def __init__(self, markdown: bool = False, usage: bool = False) -> None:
        self.markdown, self.usage = markdown, usage

    def reply(self, response: dict[str, Any]) -> None:
        chat_reply(response, self.markdown)
        if self.usage:
            reply_usage(response)

    def stream(self, reply: ReplyStream) -> None:
        chat_stream(reply)
        if self.usage:
            reply_usage({"usage": (reply.done or {}).get("usage")})

    def note(self, message: str) -> None:
        plain_note(message)

    def error(self, exc: RaictlError) -> None:  # a failed exchange: the CLI's two lines, and the REPL goes on
        error(exc)

    def sessions(self, sessions: list[dict[str, Any]], current: str | None) -> None:
        chat_sessions(sessions, current)

    def history(self, messages: list[dict[str, Any]]) -> None:
        chat_history(messages)


# ---------------------------------------------------------------- service: `raictl up/down/restart/status/logs`

STATE_STYLE = {states.RUNNING: "green", states.STARTING: "yellow", states.UNHEALTHY: "red", states.BACKOFF: "yellow",
               states.STOPPED: "dim", states.FATAL: "red"}
PREFIX_COLOURS = ("cyan", "magenta", "blue", "yellow", "green", "red")


def up_progress(states: dict[str, str]) -> None:
    """One live line on stderr while `up` waits (the caller shows it only on a terminal)."""
    line = "  ".join(f"{name}: {state}" for name, state in states.items())
    sys.stderr.write(f"\r\x1b[2Kwaiting: {line}")
    sys.stderr.flush()


def up_progress_done() -> None:
    sys.stderr.write("\r\x1b[2K")
    sys.stderr.flush()


def up_result(result: UpResult) -> None:
    """What `up` did: ready services on stdout; each failure with its reason and log tail on stderr.
    Plain text (ANSI colours on a terminal): importing rich would delay `up` by ~0.1 s."""
    tty_out, tty_err = sys.stdout.isatty(), sys.stderr.isatty()
    if result.migration:
        sys.stderr.write(_paint(result.migration, "dim", tty_err) + "\n")
    for name in result.ready:
        if result.restarted.get(name):  # `up` with changed settings: say so, and what changed (no secret)
            sys.stdout.write(f"{_paint('↻', 'green', tty_out)} {name} restarted: {result.restarted[name]}\n")
            continue
        how = "already running" if name in result.already else "ready"
        sys.stdout.write(f"{_paint('✓', 'green', tty_out)} {name} {how}\n")
    if result.page_url:
        sys.stdout.write(f"  chat page: {_paint(result.page_url, 'cyan', tty_out)}\n")
    for notice in result.warnings:
        sys.stderr.write(f"{_paint('! ' + notice.service, 'yellow', tty_err)}: {notice.message}\n")
        if notice.hint:
            sys.stderr.write(f"hint: {notice.hint}\n")
    for failure in result.failures:
        sys.stderr.write(f"{_paint('✗ ' + failure.service, 'red', tty_err)}: {failure.reason}\n")
        if failure.log_tail:
            sys.stderr.write(_paint(f"--- last {len(failure.log_tail)} lines of its log ---", "dim", tty_err) + "\n")
            sys.stderr.write("".join(f"  {line}\n" for line in failure.log_tail))
        if failure.hint:
            sys.stderr.write(f"hint: {failure.hint}\n")


def down_warning(text: str) -> None:
    """One plain line on stderr before `down` acts without settings."""
    sys.stderr.write(f"warning: {text}\n")
    sys.stderr.flush()


def down_result(result: DownResult) -> None:
    tty = sys.stdout.isatty()
    if not result.stopped:
        sys.stdout.write("nothing was running\n")
    for name in result.stopped:
        forced = " (SIGKILL after the grace period)" if name in result.forced else ""
        sys.stdout.write(f"{_paint('■', 'dim', tty)} {name} stopped{forced}\n")


ANSI = {"dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36"}


def _paint(text: str, colour: str | None, tty: bool) -> str:
    """`text` in `colour` on a terminal (the codes typer.style writes, without importing Typer:
    `raictl status` and `up` answer without it)."""
    if not tty or not colour:
        return text
    return f"\x1b[{ANSI[colour]}m{text}\x1b[0m"


def _listen_text(status: ServiceStatus) -> str:
    if not status.listen:
        return "-"
    hosts = ", ".join(f"{l.host} {_listen_mark(status, l)}" for l in status.listen)
    return f"{status.listen[0].port}: {hosts}"


def _listen_mark(status: ServiceStatus, listen: ListenResult) -> str:
    """✓ accepts, ✗ refuses; `taken` when it accepts though the service is not running (another
    process holds the port: the troubleshooting log's stale server)."""
    if not listen.ok:
        return "✗"
    return "✓" if status.pid else "taken"


def _taken_notes(view: Overview) -> list[str]:
    notes = []
    for s in view.services:
        taken = [l for l in s.listen if l.ok and not s.pid]
        if taken:
            where = ", ".join(host_port(l.host, l.port) for l in taken)
            notes.append(f"{s.name} is not running, yet {where} accepts connections: another process holds "
                         f"the port (`raictl up {s.name}` names it)")
    return notes


def _wildcard_notes(view: Overview) -> list[str]:
    """A service bound to a wildcard: the loopback that refuses, as a client shows it, and the exposure."""
    notes = []
    for s in view.services:
        if s.wildcards and s.pid:
            refused = [f"ECONNREFUSED {l.host}:{l.port}" for l in s.listen if not l.ok]
            said = f"a client of localhost gets {' and '.join(refused)}; " if refused else ""
            notes.append(f"{s.name} binds {', '.join(s.wildcards)}: {said}it takes connections from the network")
    return notes


def _health_text(status: ServiceStatus) -> str:
    latency = f" {status.health.latency_ms:g} ms" if status.health.latency_ms is not None else ""
    return status.health.detail + latency


def _last_exit_text(status: ServiceStatus) -> str:
    if not status.last_exit:
        return "-"
    from datetime import datetime

    at = datetime.fromtimestamp(status.last_exit.at).strftime("%H:%M:%S")
    return f"{status.last_exit.describe()} at {at}"


STATUS_COLUMNS = ("service", "state", "pid", "uptime", "restarts", "listen", "health", "last exit")


def _status_rows(view: Overview) -> list[tuple[list[str], list[str | None]]]:
    rows = []
    for s in view.services:
        cells = [s.name, s.state, str(s.pid or "-"), _uptime(s.uptime_s), str(s.restarts), _listen_text(s),
                 _health_text(s), _last_exit_text(s)]
        listen_ok = all(l.ok for l in s.listen)
        colours = [None, STATE_STYLE[s.state], None, None, "yellow" if s.restarts else None,
                   None if listen_ok or s.pid is None else "red",
                   "green" if s.health.ok else ("red" if s.pid else "dim"), None]
        rows.append((cells, colours))
    return rows


def service_status(view: Overview, as_json: bool) -> None:
    """`raictl status`: a plain aligned table (coloured on a terminal), or the DESIGN.md JSON document.

    Plain text rather than a rich table: status must be quick to start, and readable when piped."""
    if as_json:
        print_json({"services": [s.to_dict() for s in view.services],
                    "supervisor": {"running": view.supervisor_pid is not None, "pid": view.supervisor_pid}})
        return
    tty = sys.stdout.isatty()
    rows = _status_rows(view)
    widths = [max(len(c) for c in column) for column in zip(STATUS_COLUMNS, *(cells for cells, _ in rows))]
    lines = ["  ".join(_paint(h.ljust(w), "dim", tty) for h, w in zip(STATUS_COLUMNS, widths)).rstrip()]
    for cells, colours in rows:
        lines.append("  ".join(_paint(c.ljust(w), k, tty) for c, w, k in zip(cells, widths, colours)).rstrip())
    lines += [_paint(note, "yellow", tty) for note in _taken_notes(view) + _wildcard_notes(view)]
    if view.supervisor_pid is None and any(s.pid for s in view.services):
        lines.append(_paint("the supervisor process is gone: nothing restarts these; `raictl up` adopts them",
                            "yellow", tty))
    for s in view.services:
        if s.state == states.FATAL and s.log_tail:
            lines.append(_paint(f"{s.name} is fatal ({s.reason}); last lines of its log:", "red", tty))
            lines += [f"  {line}" for line in s.log_tail[-10:]]
    sys.stdout.write("\n".join(lines) + "\n")


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def log_line(name: str, line: str, width: int, colour_index: int, prefixed: bool) -> None:
    """One log line; with a coloured `name |` prefix when several logs are shown together."""
    if not prefixed:
        sys.stdout.write(line + "\n")
    else:
        colour = PREFIX_COLOURS[colour_index % len(PREFIX_COLOURS)]
        sys.stdout.write(f"{_paint(f'{name:<{width}} |', colour, sys.stdout.isatty())} {line}\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- migrate: `raictl migrate [--repair]`

def migrate_plan(plan: Plan) -> None:
    """The plan shown before asking to apply it (stderr: stdout stays for the result). Every value is
    escaped: a detail or a revision may hold [brackets] rich would read as markup."""
    from rich.markup import escape

    err = console(stderr=True)
    err.print(f"database at: {escape(plan.before or 'no revision')}"
              + (f"; its schema matches [bold]{escape(plan.matched)}[/]" if plan.matched else ""))
    for action in plan.actions:
        err.print(f"  [yellow]•[/] {action.kind}: {escape(action.detail)}")
    for refusal in plan.refused:
        err.print(f"  {MARKS['fail']} refused: {escape(refusal)}")


def migrate_result(result: MigrateResult, as_json: bool) -> None:
    """`raictl migrate`: before/after, each action with its exact SQL, refusals, extras, the backup."""
    if as_json:
        print_json(result.as_json())
        return
    from rich.markup import escape

    out = console()
    out.print(f"before: {escape(result.before or 'no revision')}")
    if result.matched:
        out.print(f"the live schema matches revision [bold]{escape(result.matched)}[/] "
                  "(the latest whose tables and columns are all present)")
    mark = "[yellow]•[/]" if result.dry_run else MARKS["ok"]
    for action in result.actions:
        out.print(f"{mark} {action.kind}: {escape(action.detail)}")
        for line in action.sql.splitlines():
            out.print(f"    [dim]{escape(line)}[/]")
    for refusal in result.refused:
        out.print(f"{MARKS['fail']} refused: {escape(refusal)}")
    if result.extras:
        out.print(f"{MARKS['warn']} left alone (not in the models): {escape(', '.join(result.extras))}")
    _migrate_outcome(out, result)


def restore_result(result: RestoreResult, as_json: bool) -> None:
    """`raictl migrate --restore`: the rows put back per table, and the revision the database is at."""
    if as_json:
        print_json(result.as_json())
        return
    from rich.markup import escape

    out = console()
    out.print(f"{MARKS['ok']} restored {len(result.rows)} tables, {sum(result.rows.values()):,} rows from "
              f"{escape(result.source)}")
    for table, count in result.rows.items():
        out.print(f"    {escape(table)}: {count:,} rows")
    out.print(f"revision: {escape(result.after or 'none')} (`raictl migrate` brings it to head)")


def migrate_failure(exc: RaictlError, dry_run: bool) -> None:
    """`raictl migrate --json` that failed: DESIGN's document, nothing done, plus `error` {message, hint}.
    A refusal knows where the database stands (`before` == `after`); a database never reached does not."""
    from raictl.migrate import Refusal

    before = exc.before if isinstance(exc, Refusal) else None
    refused = [exc.message] if isinstance(exc, Refusal) else []
    print_json({"before": before, "after": before, "actions": [], "refused": refused, "extras": [], "backup": None,
                "dry_run": dry_run, "error": {"message": exc.message, "hint": exc.hint}})


def _migrate_outcome(out: Console, result: MigrateResult) -> None:
    from rich.markup import escape

    if result.backup:
        out.print(f"backup: {escape(result.backup)} [dim](every table with its rows; restore with "
                  "`raictl migrate --restore FILE`)[/]")
    if result.dry_run:
        out.print("dry run: nothing was changed" + ("; nothing would be done" if not result.actions else ""))
    elif not result.actions and not result.refused:
        out.print(f"nothing to do: the database is at {escape(result.after or 'no revision')}")
    out.print(f"after: {escape(result.after or 'no revision')}")


# ---------------------------------------------------------------- doctor: `raictl doctor`

def doctor_results(results: Sequence[Result], as_json: bool, verbose: bool) -> None:
    """Flutter-style: a mark, the id and a one-line summary per check, the hint under a finding, a summary."""
    if as_json:
        print_json({"ok": not any(r.status == "fail" for r in results), "checks": [r.as_dict() for r in results]})
        return
    from rich.markup import escape

    out = console()
    width = max((len(r.id) for r in results), default=0)
    for r in results:
        timing = f" [dim]({r.duration_ms} ms)[/]" if verbose else ""
        out.print(f"[{MARKS[r.status]}] {r.id:<{width}}  {escape(r.summary)}{timing}")
        if r.hint and r.status in ("fail", "warn") or (verbose and r.hint):
            out.print(f"    {' ' * width}[cyan]→ {escape(r.hint)}[/]")
        if verbose:
            for line in r.details:
                out.print(f"    {' ' * width}[dim]{escape(line)}[/]")
    out.print(doctor_summary(results))


def doctor_summary(results: Sequence[Result]) -> str:
    """`Doctor found 2 issues (1 failed, 1 warning); 25 ok, 3 skipped.` or `No issues found! (…)`."""
    counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "warn", "fail", "skip")}
    rest = f"{counts['ok']} ok, {counts['skip']} skipped"
    issues = counts["fail"] + counts["warn"]
    if not issues:
        return f"{MARKS['ok']} No issues found! ({rest})"
    mark = MARKS["fail"] if counts["fail"] else MARKS["warn"]
    plural = "s" if issues > 1 else ""
    return (f"{mark} Doctor found {issues} issue{plural} ({counts['fail']} failed, {counts['warn']} warning"
            f"{'s' if counts['warn'] != 1 else ''}); {rest}.")


def doctor_list(checks: Sequence[Check]) -> None:
    out = console()
    width = max((len(c.id) for c in checks), default=0)
    for c in checks:
        out.print(f"{c.id:<{width}}  {c.title}")


def doctor_fix_plan(planned: Sequence[PlannedFix]) -> None:
    """The fixes about to run, listed before any of them does (stderr: stdout stays for the results)."""
    err = console(stderr=True)
    if not planned:
        err.print("[dim]no safe fix applies to these findings[/]")
        return
    err.print("Fixes to apply:")
    for item in planned:
        ask = " [dim](asks first)[/]" if item.fix.confirm else ""
        err.print(f"  [yellow]•[/] {item.fix.title}  [dim]for {item.result.id}[/]{ask}")


def doctor_fix_outcome(item: PlannedFix, message: str, ok: bool) -> None:
    from rich.markup import escape

    console(stderr=True).print(f"  {MARKS['ok' if ok else 'fail']} {escape(item.fix.title)}: {escape(message)}")


# -- export ---------------------------------------------------------------------------------------

def export_result(result: Export, written: list[Path], kept: list[Path]) -> None:
    """What `raictl export` wrote, what it kept, the notes, and what to run next (stdout: it is the answer)."""
    out = sys.stdout
    out.write(f"raictl export {result.target}: {len(written)} file(s) in {result.out}\n")
    for path in written:
        out.write(f"  wrote {path.name}\n")
    for path in kept:
        out.write(f"  kept {path.name} (it exists: it may hold the values you filled in)\n")
    for note_text in result.notes:
        out.write(f"note: {note_text}\n")
    out.write("next:\n" + "".join(f"  {step}\n" for step in result.next_steps))

"""Configuration checks: settings resolved with their sources, the `.env` file, the secret key (log step 21)."""

from __future__ import annotations

import difflib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, check
from raishared.settings import (DOTENV_NAME, FIELDS, FIELDS_BY_NAME, SECRET_FILE, TOML_TABLES, TOML_TOP, dotenv_errors,
                                read_dotenv, read_toml, unknown_toml_keys)

if TYPE_CHECKING:
    from raishared.settings import Settings

KNOWN_VARS = {var for f in FIELDS for var in f.env}
# Folders never searched for a stray .env (virtualenvs and dependencies carry their own).
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".raictl"}


@check("config.settings", "Settings resolved", needs_settings=False)
def settings_resolved(ctx: CheckContext) -> Result:
    if ctx.shared.settings_error is not None:
        err = ctx.shared.settings_error
        return ctx.fail(f"settings do not load: {err.message}", hint=err.hint)
    s = ctx.settings
    rows = [f"{f.env[0]} = {s.display(f.name) or '(not set)'}  [{s.sources.get(f.name, 'default')}]"
            for f in FIELDS if f.name != "secret_key"]
    origins: dict[str, int] = {}
    for src in s.sources.values():
        kind = "derived" if src.startswith("derived") else src.split(" (")[0]
        origins[kind] = origins.get(kind, 0) + 1
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(origins.items(), key=lambda kv: -kv[1]))
    where = f"config {s.config_file}" if s.config_file else "no raictl.toml"
    unknown = unknown_toml_keys(read_toml(s.config_file)) if s.config_file else []
    if unknown:  # a typo there is otherwise silently ignored: `[rai-api] port = 7001` leaves the default port
        return ctx.warn(f"{s.config_file} has keys raictl does not read: {', '.join(unknown)}",
                        hint=f"fix the spelling; raictl reads {', '.join(TOML_TOP)} and "
                             + ", ".join(f"[{table}] {'/'.join(keys)}" for table, keys in TOML_TABLES.items()),
                        details=rows)
    return ctx.ok(f"{counts}; {where}; home {s.home} (secrets masked, -v lists them)", details=rows)


def stray_env_files(base: Path, depth: int = 2) -> list[Path]:
    """`.env` files below `base` (not `base/.env` itself) that raictl does not read."""
    found, frontier = [], [base]
    for _ in range(depth):
        nxt = []
        for folder in frontier:
            try:
                subdirs = [p for p in folder.iterdir() if p.is_dir() and p.name not in _SKIP_DIRS]
            except OSError:
                continue
            found += [d / DOTENV_NAME for d in subdirs if (d / DOTENV_NAME).is_file()]
            nxt += subdirs
        frontier = nxt[:200]  # bounded: doctor must stay fast in a big checkout
    return sorted(found)


def unread_env_files(s: Settings) -> list[tuple[Path, list[str]]]:
    """(.env, the settings it sets) for each .env in the cwd or a folder between it and raictl.toml's
    folder that is not the one raictl reads: the log's `.env` that was never read (step 21)."""
    if s.cwd is None:
        return []
    base, found, folder = s.base_dir.resolve(), [], s.cwd
    while True:
        candidate = folder / DOTENV_NAME
        if candidate != s.env_file and folder != base and candidate.is_file():
            names = sorted(n for n in read_dotenv(candidate) if n in KNOWN_VARS)
            if names:
                found.append((candidate, names))
        if folder == base or folder == folder.parent or base not in folder.parents:
            return found
        folder = folder.parent


def _dotenv_notes(path: Path) -> tuple[list[str], list[str]]:
    """(unknown names with a suggestion, names the environment overrides) in the loaded `.env`."""
    names = list(read_dotenv(path))
    unknown = []
    for name in (n for n in names if n not in KNOWN_VARS and n.isupper()):
        close = difflib.get_close_matches(name, sorted(KNOWN_VARS), n=1)
        unknown.append(f"{name} (did you mean {close[0]}?)" if close else name)
    overridden = [n for n in names if n in KNOWN_VARS and os.environ.get(n, "").strip()]
    return unknown, overridden


@check("config.env_file", ".env file found and loaded")
def env_file(ctx: CheckContext) -> Result:
    s = ctx.settings
    base = s.base_dir
    ctx.doing(f"looking for .env files under {base}")
    strays = stray_env_files(base)
    broken = dotenv_errors(s.env_file) if s.env_file else ()
    if broken:  # python-dotenv skips such a line: the key on it is silently not set
        lines = [f"{s.env_file} line {line}" + (f" ({name} is not set)" if name else "") for line, name in broken]
        return ctx.fail(f"{lines[0]}: python-dotenv cannot parse that statement and skips it",
                        hint="close the quote on that line (a value with spaces or # needs matching quotes)",
                        details=lines)
    unread = unread_env_files(s)
    if unread:
        path, names = unread[0]
        loaded = f"reads {s.env_file}" if s.env_file else f"reads only {base / DOTENV_NAME} (absent)"
        return ctx.warn(f"{path} sets {', '.join(names)} but is NOT read: raictl {loaded}, "
                        f"beside {s.config_file or 'the current folder'}",
                        hint=f"move these settings into {base / DOTENV_NAME} and delete {path}",
                        details=[f"not read: {p} ({', '.join(n)})" for p, n in unread])
    if s.env_file is None:
        if strays:
            return ctx.warn(f"no {base / DOTENV_NAME}, but {strays[0]} exists and is NOT read",
                            hint=f"raictl reads only {base / DOTENV_NAME}: move the settings there",
                            details=[str(p) for p in strays])
        return ctx.skip(f"no .env at {base / DOTENV_NAME} (optional)",
                        hint="`raictl doctor --fix` writes a commented template there")
    unknown, overridden = _dotenv_notes(s.env_file)
    used = sorted({src.split("(")[1].rstrip(")") for src in s.sources.values() if src.startswith(".env")})
    details = [f"used: {', '.join(used) or 'nothing'}"] + [f"overridden by the environment: {n}" for n in overridden]
    details += [f"not read (another folder): {p}" for p in strays]
    if unknown:
        return ctx.warn(f"{s.env_file} has names raictl does not know: {', '.join(unknown)}",
                        hint="fix the spelling; the known names are in README.md (Settings)", details=details)
    return ctx.ok(f"loaded {s.env_file} ({len(used)} settings used)", details=details)


@check("config.secret_key", "Token signing secret private")
def secret_key(ctx: CheckContext) -> Result:
    s = ctx.settings
    if s.secret_key_value:
        return ctx.ok(f"RAI_SECRET_KEY from {s.sources.get('secret_key', 'the environment')} "
                      f"({FIELDS_BY_NAME['secret_key'].env[0]}, masked)")
    path = s.home / SECRET_FILE
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return ctx.ok(f"{path} will be generated (mode 0600) when the RAI API first starts")
    if mode & 0o077:
        return ctx.fail(f"{path} has mode {mode:04o}: other users can read the token signing secret",
                        hint=f"chmod 600 {path}")
    return ctx.ok(f"{path} (mode 0600)")


SECRET_VARS = {var for f in FIELDS if f.secret for var in f.env}


@check("config.env_secrets", ".env holding secrets private")
def env_secrets(ctx: CheckContext) -> Result:
    """A `.env` that sets a key, a password or the signing secret must be readable by its owner only."""
    path = ctx.settings.env_file
    if path is None:
        return ctx.skip("no .env is read")
    held = sorted(n for n in read_dotenv(path) if n in SECRET_VARS)
    if not held:
        return ctx.ok(f"{path} holds no secret setting")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return ctx.warn(f"{path} holds {', '.join(held)} and has mode {mode:04o}: other users can read it",
                        hint=f"chmod 600 {path}")
    return ctx.ok(f"{path} holds {', '.join(held)} (mode {mode:04o})")


@check("config.services", "Services of raictl.toml load")
def services(ctx: CheckContext) -> Result:
    from raictl.doctor.observe import ServicesUnreadable, read_specs

    try:
        specs = read_specs(ctx.settings)
    except ServicesUnreadable as exc:
        return ctx.fail(exc.message, hint=exc.hint)
    extra = [name for name in specs if name not in ("llm_api", "rai_api")]
    where = f" + {', '.join(extra)} from {ctx.settings.config_file}" if extra else ""
    return ctx.ok(f"{len(specs)} services: llm_api, rai_api{where}",
                  details=[f"{s.name}: {' '.join(s.command)[:120]}" for s in specs.values()])

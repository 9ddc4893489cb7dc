"""Helpers of the doctor tests: a folder with raictl.toml (+ .env), `raictl` run for real, doctor in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from raictl.doctor.context import Context
from raictl.doctor.runner import run_checks
from raishared.settings import FIELDS, load_settings
from tests.support import TEST_MARKER

_SETTING_VARS = {var for f in FIELDS for var in f.env}


def write_stack_folder(folder: Path, llm_port: int, rai_port: int, toml: str = "", dotenv: str = "") -> Path:
    """raictl.toml with its own home and ports (and a .env when given) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raictl.toml").write_text(f'home = "home"\n[rai_api]\nport = {rai_port}\n'
                                        f'[llm_api]\nport = {llm_port}\n{toml}')
    if dotenv:
        (folder / ".env").write_text(dotenv)
        (folder / ".env").chmod(0o600)  # it may hold a key: private, as doctor's config.env_secrets asks
    return folder


def cli_env(marker: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without any setting (the folder's raictl.toml and .env decide)."""
    env = {k: v for k, v in os.environ.items() if k not in _SETTING_VARS}
    if marker:
        env[TEST_MARKER] = marker
    env.update(extra)
    return env


def raictl(folder: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None,
           timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raictl", *args], capture_output=True, text=True,
                          cwd=folder, env=env or cli_env(), input=input, timeout=timeout)


def doctor(folder: Path | None = None, *selectors: str, environ: dict | None = None, **overrides):
    """Run doctor in this process for the settings of `folder`; {check id: Result}."""
    settings = load_settings(cwd=folder, environ=environ or {}, **overrides)
    return {r.id: r for r in run_checks(list(selectors) or None, Context(settings))}


def doctor_json(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    done = raictl(folder, "doctor", "--json", *args, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def show(results) -> str:
    """Every result on one line each, for assertion messages."""
    return "\n".join(f"{r.status:4} {r.id}: {r.summary} | {r.hint}" for r in results.values())

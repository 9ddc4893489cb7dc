"""`raictl export systemd`: one unit per service on this machine, a target that starts them all, and the
EnvironmentFile= for secrets (mode 0600, names only).

The units keep raictl's rules: `Restart=on-failure` after `RestartSec=` (raictl's first delay; systemd
252 cannot double it), and `StartLimitBurst=`/`StartLimitIntervalSec=` equal to raictl's fatal rule (five
failed starts within 30 s and the service is given up). `ExecStartPost=` runs raictl's health probe, so a
unit is active only once its service is ready and `After=` means what compose's `service_healthy` means.
The migration is the RAI API's `ExecStartPre=`; with replicas, the RAI API is an instance template on
consecutive ports (`raictl-rai-api@6102.service`, `@6103`, ...), and each instance's migration waits for
the first one's (the migrate lock), then finds the database at head: it runs once.
The services run from raictl.toml's folder, so they read raictl.toml and .env there as `raictl up`'s do;
only a secret that came from raictl's environment goes in the EnvironmentFile.
No liveness here: systemd's `WatchdogSec=` needs the service to call sd_notify, which waitress does not;
a hung service stays up (raictl's own supervisor, compose and Kubernetes do restart one).
"""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from raictl.export import GeneratedFile
from raictl.export.plan import Plan, Secret, Unit
from raictl.supervisor.spec import RESTARTS

if TYPE_CHECKING:
    from raictl.export import GeneratedFile

TARGET = "raictl.target"
SECRETS_FILE = "secrets.env"
START_TIMEOUT = 180  # seconds for ExecStartPre= (the migration) + start + ExecStartPost= (readiness)
READY_WAIT = 90


def files(plan: Plan, out: Path) -> list[GeneratedFile]:
    found = [GeneratedFile(unit_file(u, plan), unit_text(u, plan, out)) for u in plan.units]
    found.append(GeneratedFile(TARGET, target_text(plan)))
    found.append(GeneratedFile(SECRETS_FILE, secrets_text(plan), mode=0o600, keep_existing=True))
    return found


def next_steps(plan: Plan, out: Path) -> list[str]:
    names = " ".join(str(out / unit_file(u, plan)) for u in plan.units)
    steps = [f"sudo systemctl link {names} {out / TARGET}", f"sudo systemctl enable --now {TARGET}",
             "journalctl -u 'raictl-*' -f   # the logs"]
    if any(True for _ in _all_secrets(plan)):
        steps.insert(0, f"fill in the secrets in {out / SECRETS_FILE} (names only were written)")
    return steps


def unit_name(unit: Unit) -> str:
    return f"raictl-{unit.slug}"


def unit_file(unit: Unit, plan: Plan) -> str:
    return f"{unit_name(unit)}@.service" if unit.replicas > 1 else f"{unit_name(unit)}.service"


def instances(unit: Unit) -> list[str]:
    """The unit names to start: one, or one instance per replica port."""
    if unit.replicas == 1 or unit.port is None:  # replicas are only ever asked of the RAI API, which has a port
        return [f"{unit_name(unit)}.service"]
    return [f"{unit_name(unit)}@{(unit.port or 0) + i}.service" for i in range(unit.replicas)]


def _escape(value: str) -> str:
    return value.replace("%", "%%")  # systemd expands %-specifiers in these values


def _quote(arg: str) -> str:
    """One ExecStart= word: %-specifiers and $VARIABLES kept literal, quoted when it holds a space."""
    arg = _escape(arg).replace("$", "$$")
    if any(c in arg for c in ' \t"\'\\;'):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def _command(words: list[str], raw_tail: tuple[str, ...] | list[str] = ()) -> str:
    """ExecStart= text; `raw_tail` words are written as they are (they may hold %i)."""
    return " ".join([*(_quote(w) for w in words), *raw_tail])


def _environment(env: dict[str, str]) -> list[str]:
    lines = []
    for key, value in env.items():
        text = _escape(f"{key}={value}").replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'Environment="{text}"')
    return lines


def _depends(unit: Unit, plan: Plan) -> list[str]:
    names = [name for dep in unit.depends_on for name in instances(plan.unit(dep))]
    return [f"Requires={' '.join(names)}", f"After={' '.join(names)}"] if names else []


def _probe(unit: Unit, port: str) -> list[str]:
    if not unit.port:
        return []
    from raishared.settings import connect_host

    words = [sys.executable, "-m", "raictl.export.probe", "--host", connect_host(unit.hosts[0]), "--wait", str(READY_WAIT)]
    tail = [port, *([_quote(unit.health)] if unit.health else [])]
    return [f"ExecStartPost={_command(words, tail)}"]


def unit_text(unit: Unit, plan: Plan, out: Path) -> str:
    spec = unit.spec
    templated = unit.replicas > 1
    port = "%i" if templated else str(unit.port or "")
    where = f" on port {port}" if unit.port else ""
    env = {**plan.settings_env, **unit.env}
    own_port = ["Environment=RAI_API_PORT=%i"] if templated else []  # after the shared one: it wins
    lines = ["# Generated by `raictl export systemd`; re-run it rather than edit.", "[Unit]",
             f"Description=raictl {unit.name}{' replica' if templated else ''}{where}", f"PartOf={TARGET}",
             *_depends(unit, plan), f"StartLimitIntervalSec={RESTARTS.fatal_window:g}s",
             f"StartLimitBurst={RESTARTS.fatal_starts}", "", "[Service]", "Type=exec",
             f"User={pwd.getpwuid(os.getuid()).pw_name}", f"WorkingDirectory={_escape(unit.cwd or str(plan.base_dir))}",
             *_environment(env), *own_port]
    lines.append(f"EnvironmentFile={_escape(str(out / SECRETS_FILE))}")
    if unit.name == "rai_api":
        lines.append(f"ExecStartPre={_command(list(plan.migrate))}")
    lines += [f"ExecStart={_command(list(unit.command))}", *_probe(unit, port),
              "Restart=on-failure", f"RestartSec={round(RESTARTS.backoff_initial * 1000)}ms",
              f"TimeoutStartSec={START_TIMEOUT}s", f"TimeoutStopSec={spec.grace:g}s",
              f"SyslogIdentifier={unit_name(unit)}", "", "[Install]", f"WantedBy={TARGET}", ""]
    return "\n".join(lines)


def target_text(plan: Plan) -> str:
    wanted = " ".join(name for unit in plan.units for name in instances(unit))
    return "\n".join(["# Generated by `raictl export systemd`: `systemctl start raictl.target` starts the stack.",
                      "[Unit]", "Description=raictl: the LLM API, the RAI API and the extra services",
                      f"Wants={wanted}", "", "[Install]", "WantedBy=multi-user.target", ""])


def _all_secrets(plan: Plan) -> list[Secret]:
    return [*plan.secrets, *(Secret(n, True, f"{u.name}'s own, from its raictl.toml table") for u in plan.units
                             for n in u.secrets)]


def secrets_text(plan: Plan) -> str:
    lines = ["# Secrets of the raictl units (EnvironmentFile=): raictl wrote the names only; fill in the values.",
             "# Keep this file mode 0600. Secrets in raictl.toml or .env need nothing here: the services read",
             f"# those files in {plan.base_dir} themselves."]
    for secret in _all_secrets(plan):
        lines += [f"# {secret.why}", f"{secret.name}="]
    return "\n".join(lines) + "\n"

"""Has a running service's launch changed? `raictl up` compares what a service was started with
(its entry in `desired.json`) with what it would be started with now, and restarts it when they differ.

What is compared: the command, port, listen hosts, the folder it runs in, and the environment
that matters. For the built-ins that is the settings each one reads (`READS`); an extra service
gets every setting in its environment, so any of them (and its own `env` table) matters. The
inherited basics (PATH, LANG, HOME, ...) do not: another shell must not restart everything.

The description names what changed and never shows a secret: values are shown only for settings
that are not secret; a secret setting, and any key of a service's own `env` table, by name only.
Standard library only (it is on `up`'s path).
"""

from __future__ import annotations

from typing import Any

from raictl.supervisor.state import DesiredEntry
from raishared.settings import FIELDS, env_var

SETTING_VARS = frozenset(var for f in FIELDS for var in f.env) - {env_var("home")}  # another home: another state
SECRET_VARS = frozenset(var for f in FIELDS if f.secret for var in f.env)
# the settings a built-in reads, besides its own port and hosts (compared as the spec's)
READS = {service: tuple(env_var(name) for name in names) for service, names in (
    ("llm_api", ("llm_engine", "gemini_api_key", "gemini_model", "gemini_base_url",
                 "openai_base_url", "openai_api_key", "openai_model")),
    ("rai_api", ("database_url", "llm_api_url", "secret_key", "system_prompt")))}


def launch_view(entry: DesiredEntry) -> dict[str, Any]:
    """The parts of a desired.json entry that decide how the service runs."""
    spec, env = entry.spec, entry.env
    own = set(spec.env)
    keys = READS.get(spec.name, sorted(SETTING_VARS | own))
    return {"command": list(spec.command), "port": spec.port, "hosts": list(spec.hosts),
            "cwd": spec.cwd or entry.cwd, "env": {k: env.get(k) for k in keys}, "own": own}


def changes(old: DesiredEntry | None, new: DesiredEntry, port: int | None = None,
            hosts: tuple[str, ...] = ()) -> list[str]:
    """What differs between the launch `old` (None: not on record; then only the port and hosts
    state.json recorded are compared) and `new`, one short phrase each; [] when nothing does."""
    after = launch_view(new)
    if old is None:
        before = {**after, "port": port, "hosts": list(hosts)} if port else after
    else:
        before = launch_view(old)
    found = []
    if before["command"] != after["command"]:
        found.append("command")
    if before["port"] != after["port"]:
        found.append(f"port {before['port']} → {after['port']}")
    if before["hosts"] != after["hosts"]:
        found.append(f"hosts {','.join(before['hosts'])} → {','.join(after['hosts'])}")
    if before["cwd"] != after["cwd"]:
        found.append(f"cwd {before['cwd']} → {after['cwd']}")
    hidden = SECRET_VARS | before["own"] | after["own"]
    for key in sorted(set(before["env"]) | set(after["env"])):
        was, now = before["env"].get(key), after["env"].get(key)
        if was != now:
            found.append(key if key in hidden or key not in SETTING_VARS
                         else f"{key} {was or '(not set)'} → {now or '(not set)'}")
    return found

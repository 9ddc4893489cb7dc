"""Pre-flight: does each entry module import in the interpreter that will run it?

One child `python -c` per distinct (interpreter, folder, import-relevant environment) runs
`find_spec` of the entry modules and reports `sys.path`. A fresh interpreter costs ~30 ms, so
`raictl up` starts these children first (`early_import_checks`, from light modules only) and
they run while the rest of raictl is imported; `preflight.preflight` collects them.
"""

from __future__ import annotations

import json
import subprocess

from raictl.errors import RaictlError
from raictl.supervisor import process
from raictl.supervisor.spec import ServiceSpec, all_specs, builtin, select
from raishared.settings import Settings

_FIND_SPECS = ("import importlib.util, json, sys\n"
               "found = {}\n"
               "for name in sys.argv[1:]:\n"
               "    try:\n        found[name] = None if importlib.util.find_spec(name) else "
               "f'ModuleNotFoundError: No module named {name!r}'\n"
               "    except ImportError as exc:\n        found[name] = f'{type(exc).__name__}: {exc}'\n"
               "print(json.dumps({'errors': found, 'path': sys.path}))")
# what decides where `python -m MODULE` finds MODULE: services sharing these share one check
_IMPORT_KEYS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE")

ImportCheck = tuple[list[ServiceSpec], subprocess.Popen]


def start_import_checks(specs: list[ServiceSpec], settings: Settings) -> list[ImportCheck]:
    """Launch, in parallel, find_spec of each entry module in the interpreter, environment and
    folder that will run it (one process per distinct combination); collect with `import_problem`."""
    groups: dict[tuple, tuple[list[ServiceSpec], dict, str]] = {}
    for spec in specs:
        if spec.entry_module:
            env, cwd = process.launch_env(spec, settings), process.launch_cwd(spec, settings)
            key = (spec.command[0], cwd, *(env.get(k) for k in _IMPORT_KEYS))
            groups.setdefault(key, ([], env, cwd))[0].append(spec)
    return [(group, subprocess.Popen([group[0].command[0], "-c", _FIND_SPECS, *(s.entry_module or "" for s in group)],
                                     env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            for group, env, cwd in groups.values()]


def early_import_checks(settings: Settings, names: list[str]) -> list[ImportCheck]:
    """The checks of `up NAMES` started ahead of time; [] when they cannot be started here.

    Nothing is decided here: a bad name or a missing interpreter is reported by `up` itself,
    in its usual order, and `preflight` starts whatever check is missing."""
    try:
        return start_import_checks(select(all_specs(settings), names, with_deps=True), settings)
    except (RaictlError, OSError):
        return []


def import_problem(check: ImportCheck, only: set[str] | None = None) -> RaictlError | None:
    """None when every entry module of the check (of the services in `only`, when given) is
    found; else the first failure, with sys.path."""
    group, proc = check
    out, err = proc.communicate(timeout=30)
    interpreter = group[0].command[0]
    try:
        found = json.loads(out)
    except ValueError:
        return RaictlError(f"{group[0].name}: {interpreter} could not check its entry module: "
                           f"{err.decode(errors='replace').strip()[-300:]}", hint="check the interpreter")
    for spec in group:
        why = found["errors"].get(spec.entry_module)
        if why and (only is None or spec.name in only):
            return RaictlError(f"{spec.name}: {why} (interpreter {interpreter}; sys.path searched: "
                               f"{', '.join(found['path'])})",
                               hint=_import_hint(spec))
    return None


def _import_hint(spec: ServiceSpec) -> str:
    """A built-in ships with raictl: reinstalling brings it back. An extra service's module is the
    user's own: install it, or run it from the folder that holds it (`cwd` of its table)."""
    if builtin(spec.name):
        return "reinstall raictl with its services (pip install .) or fix the command"
    return (f"install the package that provides {spec.entry_module} into that interpreter, or set cwd "
            f"in [services.{spec.name}] to the folder that holds it")


def reap(checks: list[ImportCheck]) -> None:
    """Kill and wait for the checks still running (their children carry no marker but our env)."""
    for _, proc in checks:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

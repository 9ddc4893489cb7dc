"""Import checks: each service's entry module imports in the interpreter, environment and folder that
will run it (log steps 12-16: `ModuleNotFoundError: No module named 'llm_Engine'`, four attempts).

Nothing is executed: `raictl/doctor/import_probe.py` runs in that interpreter and resolves the entry
module and everything it imports (the project's modules recursively). This goes deeper than the
pre-flight of `raictl up` (which finds the entry module only) and costs a fraction of a real import.
A service the supervisor records as running (ready: health answered) proved its imports: no child is spawned.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raictl.doctor import observe
from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, ServiceCheck, service_checks
from raictl.supervisor.spec import BUILTINS
from raictl.supervisor.states import RUNNING

if TYPE_CHECKING:
    from raictl.supervisor.spec import ServiceSpec
    from raishared.settings import Settings

IMPORT_TIMEOUT = 5.0
PROBE = Path(__file__).resolve().parent.parent / "import_probe.py"
PROJECT_PACKAGES = ("services", "raictl")  # followed module by module; other packages are only found


def import_entry(spec: ServiceSpec, settings: Settings) -> dict[str, Any]:
    """The probe's verdict on `spec`'s entry module, in the interpreter, environment and folder `raictl up` uses."""
    from raictl.supervisor.process import launch_cwd, launch_env

    module = spec.entry_module
    if module is None:
        return {"ok": False, "problems": [["-", spec.name, "not started as `python -m MODULE`"]]}

    # -c with the file's text, not the path: running a file puts its folder first on sys.path
    done = subprocess.run([spec.command[0], "-c", PROBE.read_text(), module, *PROJECT_PACKAGES],
                          env=launch_env(spec, settings), cwd=launch_cwd(spec, settings),
                          capture_output=True, text=True, timeout=IMPORT_TIMEOUT)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "problems": [["-", module, f"the probe failed: {last}"]]}


def import_check(ctx: CheckContext, name: str) -> Result:
    spec = observe.spec(ctx, name)
    if spec is None or not spec.entry_module:
        return ctx.skip(f"{name} is not started as `python -m MODULE`: nothing to import")
    # the supervisor records "running" only once health answered: the imports worked. (Not
    # waiting for health here keeps a hung port off this check's path.)
    if observe.status_of(ctx, name).state == RUNNING:
        return ctx.ok(f"{spec.entry_module} is running under raictl and answered its health: it imported")
    ctx.doing(f"resolving {spec.entry_module}'s imports with {spec.command[0]}")
    verdict = import_entry(spec, ctx.settings)
    if verdict["ok"]:
        return ctx.ok(f"{spec.entry_module} and the {verdict['checked']} project modules it needs resolve "
                      f"in {spec.command[0]}", details=[verdict["origin"]])
    problems = [f"{importer}: {reason}" for importer, _, reason in verdict["problems"]]
    where = f"{spec.command[0]} (PYTHONPATH={observe.pythonpath(spec, ctx.settings) or 'unset'})"
    return ctx.fail(f"{spec.entry_module} cannot be imported by {where}: {verdict['problems'][0][2]}",
                    hint="install the project into that interpreter (`pip install .`), or run raictl "
                         "from the interpreter that has it", details=problems)


service_checks("imports", [ServiceCheck("imports.{name}", "{name} entry module imports", import_check,
                                        lambda spec: bool(spec.entry_module), timeout=IMPORT_TIMEOUT + 1)], BUILTINS)

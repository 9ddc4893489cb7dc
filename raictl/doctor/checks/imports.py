"""Import checks: each service's entry module imports in the interpreter, environment and folder that
will run it (log steps 12-16: `ModuleNotFoundError: No module named 'llm_Engine'`, four attempts).

The entry module (`python -m services.llm_api` -> `services/llm_api/__main__.py`) is not executed:
a child interpreter imports every module its source names, so nothing is served and nothing starts.
A service that is running and answering its health already proved its imports: no child is spawned.
"""

from __future__ import annotations

import os
import subprocess

from raictl.doctor import observe
from raictl.doctor.registry import check
from raictl.supervisor.spec import BUILTINS

IMPORT_TIMEOUT = 5.0

# Run by the service's interpreter: import what the entry module imports, without running it.
_PROBE = r"""
import ast, importlib, importlib.util, sys
name = sys.argv[1]
spec = importlib.util.find_spec(name)
if spec.submodule_search_locations is not None:
    spec = importlib.util.find_spec(name + ".__main__")
tree = ast.parse(open(spec.origin).read(), spec.origin)
package = name if spec.name.endswith(".__main__") else name.rpartition(".")[0]
for node in ast.walk(tree):
    if isinstance(node, ast.Import):
        for alias in node.names:
            importlib.import_module(alias.name)
    elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
        base = importlib.import_module(("." * node.level) + (node.module or ""), package)
        for alias in node.names:
            if alias.name != "*" and not hasattr(base, alias.name):
                importlib.import_module(base.__name__ + "." + alias.name)
print(spec.origin)
"""


def import_entry(spec, settings) -> tuple[bool, str]:
    """(ok, detail): import `spec`'s entry module in its own interpreter and environment."""
    from raictl.supervisor.process import launch_env

    env = launch_env(spec, settings)
    done = subprocess.run([spec.command[0], "-c", _PROBE, spec.entry_module], env=env,
                          cwd=spec.cwd or os.getcwd(), capture_output=True, text=True, timeout=IMPORT_TIMEOUT)
    if done.returncode == 0:
        return True, done.stdout.strip()
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return False, "\n".join(lines[-6:])


def _import_check(name: str):
    def run(ctx):
        spec = observe.spec(ctx, name)
        if spec is None or not spec.entry_module:
            return ctx.skip(f"{name} is not started as `python -m MODULE`: nothing to import")
        health = observe.health(ctx, name)
        if health.answered and health.service_matches:
            return ctx.ok(f"{spec.entry_module} is running and answering: it imported")
        ctx.doing(f"importing {spec.entry_module} with {spec.command[0]}")
        ok, detail = import_entry(spec, ctx.settings)
        where = f"{spec.command[0]} (PYTHONPATH={observe.pythonpath(spec, ctx.settings)})"
        if ok:
            return ctx.ok(f"{spec.entry_module} imports in {spec.command[0]}", details=[detail])
        last = detail.splitlines()[-1] if detail else "no output"
        return ctx.fail(f"{spec.entry_module} does not import in {where}: {last}",
                        hint="install the project into that interpreter (`pip install .`), or run raictl "
                             "from the interpreter that has it", details=detail.splitlines())
    return run


for _name in BUILTINS:
    check(f"imports.{_name}", f"{_name} entry module imports", timeout=IMPORT_TIMEOUT + 1)(_import_check(_name))

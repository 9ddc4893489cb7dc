"""Safe fixes, run only with `raictl doctor --fix`, each listed before it runs.

- `NAME.running`: start a stopped service, restart a crashed one (through the supervisor, as `raictl up`).
- `db.revision`, `db.schema`: `raictl migrate --repair` (additive, backup first; asks unless --yes).
- `config.env_file`: write a commented `.env` template where raictl reads it (never overwrites one).
A fix returns one line saying what it did, or raises RaictlError.
"""

from __future__ import annotations

from dataclasses import dataclass

from raictl.doctor.registry import Fix, FixFn, Result, fix, fix_for, service_fix
from raictl.errors import RaictlError
from raictl.supervisor.spec import BUILTINS
from raishared.private_files import create_private
from raishared.settings import DOTENV_NAME, Settings


@dataclass(frozen=True)
class PlannedFix:
    fix: Fix
    result: Result


def plan_fixes(results: list[Result], services: tuple[str, ...] | list[str] = ()) -> list[PlannedFix]:
    """The fixes that apply to these results (`services`: the extra services' names), one per distinct fix."""
    planned, seen = [], set()
    for result in results:
        candidate = fix_for(result.id, services)
        if candidate and result.status in candidate.when and candidate.title not in seen:
            seen.add(candidate.title)
            planned.append(PlannedFix(candidate, result))
    return planned


def apply_fix(planned: PlannedFix, settings: Settings) -> str:
    """Run one fix; what it did, in one line (RaictlError when it could not)."""
    return planned.fix.apply(settings)


def _service_fix(name: str) -> FixFn:
    def run(settings: Settings) -> str:
        from raictl.supervisor import control
        from raictl.supervisor.status import service_statuses

        from raictl.supervisor.states import STOPPED, TROUBLED

        state = next((s.state for s in service_statuses(settings) if s.name == name), STOPPED)
        action = control.restart if state in TROUBLED else control.up
        outcome = action(settings, [name])
        if not outcome.ok:
            failure = outcome.failures[0]
            raise RaictlError(f"{name} did not start: {failure.reason}", hint=failure.hint)
        return f"{'restarted' if action is control.restart else 'started'} {name}"
    return run


service_fix("{name}.running", "start or restart {name} (raictl up {name})", BUILTINS)(_service_fix)


def repair_database(settings: Settings) -> str:
    from raictl.migrate import apply_plan, plan_repair

    plan = plan_repair(settings.database_url)
    if plan.refused:
        raise RaictlError(f"the repair refuses: {plan.refused[0]}", hint="raictl migrate --repair --dry-run")
    outcome = apply_plan(plan, settings.home)
    done = "; ".join(a.detail for a in outcome.actions) or "nothing to do"
    backup = f" (backup: {outcome.backup})" if outcome.backup else ""
    return f"database repaired: {done}{backup}"


fix("db.revision", "repair the database (raictl migrate --repair)", confirm=True)(repair_database)
fix("db.schema", "repair the database (raictl migrate --repair)", confirm=True)(repair_database)


ENV_TEMPLATE = """\
# raictl settings (read by raictl, the LLM API and the RAI API). A variable already set in the
# environment wins over this file. Uncomment what you need; README.md ("Settings") lists them all.

# Gemini: with a key, LLM_ENGINE=auto uses Gemini; without one, the mock engine answers.
# GEMINI_API_KEY=
# GEMINI_MODEL=gemini-2.5-flash
# LLM_ENGINE=auto

# Database (default: SQLite in the state folder). MySQL/MariaDB:
# RAI_DATABASE_URL=mysql+pymysql://user:password@127.0.0.1/rai

# Ports. Addresses must be IP literals; keep both loopbacks so `localhost` works either way.
# RAI_API_PORT=6102
# RAI_API_HOSTS=127.0.0.1,::1
# LLM_API_PORT=6301
# LLM_API_HOSTS=127.0.0.1,::1
"""


def write_env_template(settings: Settings) -> str:
    path = settings.base_dir / DOTENV_NAME
    if not create_private(path, ENV_TEMPLATE):  # 0600 and never over an existing file: a key will go there
        raise RaictlError(f"{path} already exists; not overwritten")
    return f"wrote a commented template to {path} (mode 0600)"


fix("config.env_file", "write a commented .env template", when=("skip",))(write_env_template)

"""`raictl doctor`: every step of the troubleshooting log as a small automated check, with safe fixes.

- `registry`    Result, @check / @fix, selection by id prefix (check ids are an interface)
- `context`     what checks share (settings, memoised probes) and each check's current step
- `observe`     the shared observations, reusing the supervisor's probes
- `checks/`     the checks, one module per area, registered in display order
- `signatures`  known failure signatures in service logs
- `runner`      parallel run, per-check deadline, stable order
- `fixes`       the safe fixes of `--fix`
Everything returns values; `raictl/render.py` prints them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raictl.doctor.registry import CHECKS, FIXES, Result, check, fix, select  # noqa: F401
from raictl.doctor.runner import make_context, run_checks  # noqa: F401

if TYPE_CHECKING:
    from raictl.doctor.context import Context
    from raictl.doctor.registry import Check


def registered_checks(context: Context | None = None) -> list[Check]:
    """Every check in display order: the built-in ones, and with a context those of its extra services."""
    from raictl.doctor.runner import available_checks

    if context is None:
        import raictl.doctor.checks  # noqa: F401 - registers them
        return list(CHECKS.values())
    return list(available_checks(context).values())

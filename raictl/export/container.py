"""Telling a container made by `raictl export` from a laptop, for doctor.

Exported compose and Kubernetes files set RAICTL_CONTAINER (`compose` or `kubernetes`) in every
service's environment. Only that marker changes doctor's verdicts: there the engine runs the services
(no raictl supervisor) and they listen on every address on purpose (the engine's network decides who
reaches them). The usual traces of a container (/.dockerenv, /run/.containerenv, KUBERNETES_SERVICE_HOST,
`container=`) are reported but change nothing: in a development container `raictl up` runs the stack as
on a laptop, and a wildcard bind there is still the troubleshooting log's `ECONNREFUSED ::1`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

CONTAINER_VAR = "RAICTL_CONTAINER"
_MARK_FILES = ("/.dockerenv", "/run/.containerenv")


def exported_container(environ: Mapping[str, str] | None = None) -> str | None:
    """The engine an exported file runs this process under (`compose`, `kubernetes`), else None."""
    environ = os.environ if environ is None else environ
    return environ.get(CONTAINER_VAR, "").strip() or None


def container_traces(environ: Mapping[str, str] | None = None, root: str = "/") -> list[str]:
    """The signs that this process runs in some container, whoever started it (empty on a laptop)."""
    environ = os.environ if environ is None else environ
    found = [path for path in _MARK_FILES if Path(root, path.lstrip("/")).exists()]
    found += [f"{var} is set" for var in ("KUBERNETES_SERVICE_HOST", "container") if environ.get(var)]
    return found

"""`raictl export compose|kubernetes|systemd`: the stack for an engine people already trust.

`export(settings, target, out, replicas)` returns an `Export`: the files as values (path relative to
`out`, text, mode), generated from the same ServiceSpecs and Settings `raictl up` uses (see `plan`).
Nothing is written here: the command writes them (`raictl/commands/export.py`). No file holds a
secret's value: secrets appear by name only, in a template the operator fills in (mode 0600), which a
second export never overwrites.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from raictl.export.plan import TARGETS, make_plan
from raishared.settings import Settings

__all__ = ["Export", "GeneratedFile", "TARGETS", "export"]


@dataclass(frozen=True)
class GeneratedFile:
    path: str                # relative to the output folder
    text: str
    mode: int = 0o644
    keep_existing: bool = False  # a template the operator fills in: never overwritten


@dataclass(frozen=True)
class Export:
    target: str
    out: Path
    files: tuple[GeneratedFile, ...]
    notes: tuple[str, ...]
    next_steps: tuple[str, ...]


def export(settings: Settings, target: str, out: Path, replicas: int = 1) -> Export:
    """The files of `target` for `settings`, to be written under `out`; RaictlError for a refusal."""
    import importlib

    plan = make_plan(settings, target, replicas)
    fmt = importlib.import_module(f"raictl.export.{target}")  # compose.py, kubernetes.py, systemd.py
    files = fmt.files(plan, out.resolve())
    return Export(target, out, tuple(files), plan.notes, tuple(fmt.next_steps(plan, out)))

"""`raictl export compose|kubernetes|systemd [--out DIR] [--replicas N]`: files for an engine you already trust.

The core (`raictl.export`) returns the files as values; this edge writes them (a secrets template that
exists is kept: it may hold the values the operator filled in) and prints what was written and what next.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from raictl.errors import RaictlError

if TYPE_CHECKING:
    from raictl.export import Export


def export(
    target: Annotated[str, typer.Argument(help="compose, kubernetes or systemd.", show_default=False)],
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Folder to write into (default: deploy/TARGET beside raictl.toml).")] = None,
    replicas: Annotated[Optional[int], typer.Option(
        "--replicas", min=1, help="RAI API replicas (default: rai_api.replicas, 1); more than one needs "
                                  "MySQL/MariaDB.")] = None,
) -> None:
    """Write compose, Kubernetes or systemd files from the same services and settings `raictl up` uses."""
    from raictl import render
    from raictl.export import export as make_export
    from raishared.settings import load_settings

    settings = load_settings()
    folder = out if out is not None else settings.base_dir / "deploy" / target
    result = make_export(settings, target, folder, replicas or settings.rai_api_replicas)
    written, kept = write_files(result)
    render.export_result(result, written, kept)


def write_files(result: Export) -> tuple[list[Path], list[Path]]:
    """Write each file of `result` under its folder, with its mode; (written, kept as they were)."""
    from raishared.private_files import create_private

    written: list[Path] = []
    kept: list[Path] = []
    try:
        result.out.mkdir(parents=True, exist_ok=True)
        for item in result.files:
            path = result.out / item.path
            if item.keep_existing:
                (written if create_private(path, item.text) else kept).append(path)
                continue
            path.write_text(item.text)
            path.chmod(item.mode)
            written.append(path)
    except OSError as exc:
        raise RaictlError(f"cannot write the export into {result.out}: {exc.strerror} ({exc.filename})",
                          hint="choose a folder you can write with --out") from None
    return written, kept


def register(app: typer.Typer) -> None:
    """Attach `export` to the raictl app."""
    app.command()(export)

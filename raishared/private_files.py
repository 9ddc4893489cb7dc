"""Files that hold secrets in <home>: born 0600 (never created open, then tightened), replaced atomically,
and made 0600 again when found readable by others; and the folders holding them (<home>, logs/) born 0700.

Used by the settings (secret_key), the chat client (credentials, token, last session, input history),
the supervisor (state.json, desired.json) and doctor's .env template. Stdlib only: on the CLI's start-up path.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from raishared.errors import HintedError


def ensure_private_dir(path: Path) -> None:
    """Create the folder `path`, and each missing parent, mode 0700 (born so, never tightened after).
    A folder that exists keeps its mode: the user chose it (docs/decisions.md)."""
    if path.is_dir():
        return
    ensure_private_dir(path.parent)  # XDG's rule for a missing folder on the way: 0700 too
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:  # another raictl made it in between; a file there is still an error
        if not path.is_dir():
            raise


def create_private(path: Path, text: str) -> bool:
    """Create `path` holding `text`, mode 0600, unless it exists: False when another writer was first."""
    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return True


def write_json_atomic(path: Path, document: Any) -> None:
    """Write `document` to `path` so a reader sees the old file or the new one, never half (0600)."""
    import tempfile  # ~3 ms of imports (random, shutil) that `raictl status` never needs

    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=1)
        os.replace(tmp, path)
    except BaseException:  # the temp file must not outlive a failed write, whatever stopped it
        Path(tmp).unlink(missing_ok=True)
        raise


def keep_private(path: Path) -> str | None:
    """Make a secret-holding file 0600 again when group or others may read it; returns a note saying
    so (None when it already was, or is missing). Refuses a file that cannot be tightened.

    Fixing rather than refusing (as ssh does): whatever was readable has been, refusing protects
    nothing more, and the next run would meet the same file.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not mode & 0o077:
        return None
    try:
        os.chmod(path, 0o600)
    except OSError as exc:  # e.g. another user's file
        raise HintedError(f"{path} is readable by others (mode {mode:04o}) and cannot be made 0600: "
                          f"{exc.strerror or exc}", hint=f"chmod 600 {path}, or remove it") from None
    return f"{path} was mode {mode:04o}; made it 0600 (it holds a secret)"

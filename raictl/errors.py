"""The one user-facing error type, raised where a failure is understood, rendered once at the CLI edge.

`RaictlError` is the shared layer's `HintedError` (raishared.errors): a bad setting raised by
`raishared.settings` and a failure raised by raictl's own core are the same type, caught and
rendered in the same place.
"""

from __future__ import annotations

import os

from raishared.errors import HintedError

RaictlError = HintedError


def debugging() -> bool:
    """RAICTL_DEBUG is on (set, and neither empty nor 0): a RaictlError then keeps its traceback
    instead of being rendered as one line. The one place both CLI paths (entry.py, cli.py) ask."""
    return os.environ.get("RAICTL_DEBUG", "") not in ("", "0")

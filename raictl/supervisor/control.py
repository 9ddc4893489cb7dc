"""What the commands call, by job (each module's docstring says more):

- `preflight`   every reason `up` would fail, found before anything starts or stops
- `daemon`      the watch loop started as a daemon of its own session
- `launch`      `up` and `restart`: pre-flight, hand the work to the loop, wait until ready
- `shutdown`    `down`, with or without a live supervisor, or with state.json damaged
- `foreground`  `up --foreground`: the same loop in the terminal

The fast path (`raictl.entry`) imports `launch` and `shutdown` directly: one module fewer to load.
"""

from __future__ import annotations

from raictl.supervisor.foreground import run_foreground
from raictl.supervisor.launch import Failure, UpResult, chat_page_url, restart, up
from raictl.supervisor.shutdown import DownResult, down, down_in, home_without_settings

__all__ = ["DownResult", "Failure", "UpResult", "chat_page_url", "down", "down_in", "home_without_settings",
           "restart", "run_foreground", "up"]

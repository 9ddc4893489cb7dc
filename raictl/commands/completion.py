"""`raictl completion bash|zsh|fish`: print the shell's completion script (Typer's own).

Nothing of it runs on other commands: the script makes the shell call `raictl` with
`_RAICTL_COMPLETE` set, and only then does `raictl.cli.main` register Typer's completion classes
(`completion_init`). The fast path of `raictl.entry` never gets there (it needs a command word).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

COMPLETE_VAR = "_RAICTL_COMPLETE"  # set by the scripts of `raictl completion` when the shell asks


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion(shell: Annotated[Shell, typer.Argument(help="The shell to complete in.", show_default=False)]) -> None:
    """Print the completion script for a shell.

    bash: eval "$(raictl completion bash)" in ~/.bashrc; zsh: eval "$(raictl completion zsh)" in ~/.zshrc
    (after compinit); fish: raictl completion fish > ~/.config/fish/completions/raictl.fish
    """
    from typer.completion import get_completion_script

    typer.echo(get_completion_script(prog_name="raictl", complete_var=COMPLETE_VAR, shell=shell.value))


def register(app: typer.Typer) -> None:
    """Attach `completion` to the raictl app."""
    app.command()(completion)

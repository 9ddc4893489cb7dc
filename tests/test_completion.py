"""`raictl completion bash|zsh|fish`: the scripts, answered by the real raictl (bash itself runs the bash one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = str(Path(sys.executable).parent)  # the venv's bin: its `raictl` runs this checkout


def raictl(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raictl", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def bash_complete(words: str) -> list[str]:
    """What bash offers after `words` (the last one being completed), through the script raictl prints."""
    script = raictl("completion", "bash").stdout
    words_list = words.split(" ")
    line = (f'eval "$COMPLETION"; COMP_WORDS=({" ".join(repr(w) for w in words_list)}); '
            f'COMP_CWORD={len(words_list) - 1}; _raictl_completion raictl; printf "%s\\n" "${{COMPREPLY[@]}}"')
    done = subprocess.run(["bash", "--norc", "-c", line], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "COMPLETION": script})
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_and_options():
    assert bash_complete("raictl st") == ["status"]
    assert set(bash_complete("raictl ")) >= {"up", "down", "status", "logs", "chat", "doctor", "completion"}
    assert {"--fix", "--json", "--list"} <= set(bash_complete("raictl doctor --"))
    assert bash_complete("raictl completion f") == ["fish"]


@pytest.mark.parametrize("shell,words,expected", [
    ("zsh", "raictl doc", '"doctor":'),
    ("fish", "raictl doc", "doctor\t"),
])
def test_zsh_and_fish_scripts_call_raictl_which_answers(shell, words, expected):
    script = raictl("completion", shell).stdout
    assert "_RAICTL_COMPLETE=complete_" + shell in script
    extra = {"_TYPER_COMPLETE_FISH_ACTION": "get-args"} if shell == "fish" else {}
    answer = raictl(_RAICTL_COMPLETE=f"complete_{shell}", _TYPER_COMPLETE_ARGS=words, **extra)
    assert answer.returncode == 0 and expected in answer.stdout, answer
    assert '"down":' not in answer.stdout and "down\t" not in answer.stdout


def test_an_unknown_shell_is_a_usage_error():
    done = raictl("completion", "ksh")
    assert done.returncode == 2 and "'ksh' is not one of 'bash', 'zsh', 'fish'" in done.stderr
    assert "Traceback" not in done.stderr

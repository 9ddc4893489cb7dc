"""Known failure signatures in a service's log, each turned into a one-line diagnosis (log steps 7, 9, 12,
18-20, 29, 30), pointing at the file and line of the traceback's innermost frame in project code.

Data, not code: a new signature is one more `Signature` in SIGNATURES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')
_LIBRARY = ("site-packages", "dist-packages", "/lib/python3", "<frozen")


@dataclass(frozen=True)
class Signature:
    name: str
    pattern: re.Pattern
    diagnosis: str
    hint: str


def _sig(name: str, pattern: str, diagnosis: str, hint: str) -> Signature:
    return Signature(name, re.compile(pattern), diagnosis, hint)


SIGNATURES: tuple[Signature, ...] = (
    _sig("DetachedInstanceError", r"DetachedInstanceError",
         "an ORM object was used after its database session closed",
         "read what you need inside the `with session` block (log step 8)"),
    _sig("ModuleNotFoundError", r"ModuleNotFoundError: No module named '?([\w.]+)",
         "a module could not be imported: {0}",
         "run the service with the interpreter that has the project installed (see imports.*)"),
    _sig("ImportError", r"ImportError: (.+)",
         "a module could not be imported: {0}",
         "install what is missing into the interpreter that runs the service (for google.genai: "
         "pip install google-genai), then `raictl restart`"),
    _sig("unexpected keyword", r"got an unexpected keyword argument '?(\w+)",
         "a call passes a keyword argument the function does not take: {0}",
         "make the call match the function's signature (log step 11)"),
    _sig("missing argument", r"missing (\d+) required positional argument",
         "a call leaves out {0} required argument(s)", "make the call match the function's signature (log step 30)"),
    _sig("NameError", r"NameError: name '?(\w+)",
         "a name is used that is not defined (removed or never imported): {0}", "restore the name or drop its use"),
    _sig("AttributeError", r"AttributeError: (.+)",
         "an attribute does not exist: {0}", "fix the attribute name or initialise it (log steps 19, 30)"),
    _sig("Unknown column", r"Unknown column '?([\w.]+)|no such column: ([\w.]+)|has no column named (\w+)",
         "the database lacks a column the models use: {0}", "raictl migrate --repair"),
    _sig("Can't locate revision", r"Can't locate revision identified by '?(\w+)",
         "alembic_version names a revision no migration script knows: {0}", "raictl migrate --repair"),
    _sig("ECONNREFUSED", r"ECONNREFUSED|Connection refused|\[Errno 111\]",
         "a connection was refused: a service it calls was down or bound to another address",
         "see the *.listen.* and wiring.* checks"),
    _sig("Address already in use", r"Address already in use|EADDRINUSE|\[Errno 98\]",
         "the port was taken when it started", "see the *.port checks: stop the other process or change the port"),
    _sig("killed by signal", r"killed by (SIG(?!TERM\b|INT\b)\w+)|exit code -(\d+)|was sent (SIG\w+)",
         "the process was killed by {0}", "SIGKILL often means out of memory or a forced stop: check dmesg"),
)


@dataclass(frozen=True)
class Finding:
    signature: Signature
    line_no: int
    text: str
    where: str | None

    def describe(self) -> str:
        match = self.signature.pattern.search(self.text)
        detail = next((g for g in match.groups() if g), "") if match and match.groups() else ""
        head = self.signature.diagnosis.format(detail.strip()[:120])
        return f"{head}" + (f" at {self.where}" if self.where else "")


def frame_before(lines: list[str], index: int) -> str | None:
    """`file:line` of the innermost project frame of the traceback ending at `index` (else any frame)."""
    frames = []
    for line in reversed(lines[max(0, index - 60):index]):
        match = _FRAME.match(line)
        if match:
            frames.append(f"{match.group(1)}:{match.group(2)}")
        elif frames and line.startswith("Traceback"):
            break
    ours = [f for f in frames if not any(lib in f for lib in _LIBRARY)]
    return (ours or frames)[0] if frames else None


def scan(lines: list[str]) -> list[Finding]:
    """Every known signature in `lines`, once per signature and traceback (the last occurrence)."""
    found: dict[str, Finding] = {}
    for index, line in enumerate(lines):
        if _FRAME.match(line):
            continue
        for sig in SIGNATURES:
            if sig.pattern.search(line):
                found[sig.name] = Finding(sig, index + 1, line.strip(), frame_before(lines, index))
                break
    return sorted(found.values(), key=lambda f: f.line_no)

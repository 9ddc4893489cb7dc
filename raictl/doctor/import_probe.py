"""Run by a service's own interpreter (as `python -c <this file's text> MODULE`): can MODULE be imported?

Resolves, without executing anything, the entry module and every module it imports, following the
project's own modules (those beside the entry's top package) recursively and checking each other
import with find_spec. Imports inside `if`/`try` blocks are conditional and skipped. This catches
the troubleshooting log's steps 12-16 (`No module named 'llm_Engine'`), a dependency missing from
that interpreter, and a syntax error, in a fraction of the time a real import of Flask, SQLAlchemy
and google-genai takes. Only the standard library is used: that interpreter may have nothing else.
Prints one JSON line: {"ok", "origin", "checked", "problems": [[importer, name, reason]]}.

Usage: `python -c TEXT MODULE [PACKAGE...]`: the project's modules are those of MODULE's top package
and of each PACKAGE (by name, not by folder: installed with `pip install .` they sit in
site-packages beside every dependency, which must not be walked).
"""

import ast
import importlib.machinery
import importlib.util
import json
import os
import sys

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type comments, not annotations: the interpreter running this may be older than raictl's
    from typing import Any, Dict, Iterable, List, Optional, Set, Tuple  # noqa: F401 - read by the type comments


def resolve(name):
    # type: (str) -> Optional[importlib.machinery.ModuleSpec]
    """The spec of a dotted module name, found without importing any of its packages; None if absent."""
    parts = name.split(".")
    spec = importlib.util.find_spec(parts[0])
    for i in range(1, len(parts)):
        if spec is None or spec.submodule_search_locations is None:
            return None
        try:
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), spec.submodule_search_locations)
        except KeyError:  # a namespace portion: importlib wants its parent imported, which we never do
            return importlib.machinery.ModuleSpec(name, None)
    return spec


def unconditional_imports(tree):
    # type: (ast.AST) -> List[Tuple[str, Tuple[str, ...], int]]
    """(module, names, level) of every import not nested in an `if` or `try` block."""
    found = []  # type: List[Tuple[str, Tuple[str, ...], int]]
    stack = [(tree, False)]
    while stack:
        node, conditional = stack.pop()
        if isinstance(node, ast.Import) and not conditional:
            found += [(alias.name, (), 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not conditional and node.module != "__future__":
            found.append((node.module or "", tuple(a.name for a in node.names), node.level))
        inner = conditional or isinstance(node, (ast.If, ast.Try))
        stack += [(child, inner) for child in ast.iter_child_nodes(node)]
    return found


def follow(name, origin, tops, problems):
    # type: (str, str, Set[str], List[List[str]]) -> List[Tuple[str, str]]
    """Check every import of module `name` (file `origin`); the project modules to follow next."""
    try:
        tree = ast.parse(open(origin, encoding="utf-8").read(), origin)
    except SyntaxError as exc:
        problems.append([name, name, "SyntaxError: %s (%s:%s)" % (exc.msg, origin, exc.lineno)])
        return []
    package = name if origin.endswith("__init__.py") else name.rpartition(".")[0]
    nxt = []
    for module, names, level in unconditional_imports(tree):
        target = importlib.util.resolve_name("." * level + module, package) if level else module
        for i, candidate in enumerate([target] + [target + "." + n for n in names if n != "*"]):
            found = resolve(candidate)
            if found is None:
                if i == 0:  # `from pkg import name`: a name that is no submodule is an attribute
                    problems.append([name, candidate, "No module named %r" % candidate])
                continue
            if found.origin and candidate.split(".")[0] in tops and found.origin.endswith(".py"):
                nxt.append((candidate, found.origin))
    return nxt


def main(entry, packages=()):
    # type: (str, Iterable[str]) -> Dict[str, Any]
    spec = resolve(entry)
    if spec is not None and spec.submodule_search_locations is not None:
        spec = resolve(entry + ".__main__")
    if spec is None or not spec.origin:
        return {"ok": False, "origin": None, "checked": 0,
                "problems": [["-m", entry, "No module named %r (sys.path: %s)" % (entry, os.pathsep.join(sys.path))]]}
    tops = {entry.split(".")[0], *packages}
    todo = [(spec.name, spec.origin)]  # type: List[Tuple[str, str]]
    seen, problems = set(), []  # type: Set[str], List[List[str]]
    while todo:
        name, origin = todo.pop()
        if origin not in seen:
            seen.add(origin)
            todo += follow(name, origin, tops, problems)
    return {"ok": not problems, "origin": spec.origin, "checked": len(seen), "problems": problems}


print(json.dumps(main(sys.argv[1], sys.argv[2:])))

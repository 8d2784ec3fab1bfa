"""Run by the host's virtualenv python: which modules the installed apps need that their distribution does not declare.

``python declared.py <distribution> <module>...`` prints a JSON list of ``"module (distribution)"`` for every
third-party module that the distribution's packages import (module level and inside functions), or that is named
on the command line, whose distribution is not among the distribution's requirements (transitively). Empty: a plain
``pip install`` of the distribution brings everything.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import re
import sys
from pathlib import Path


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str | None:
    """The distribution a requirement names, or ``None`` when it is only for an extra."""
    if re.search(r"""extra\s*==""", requirement):
        return None
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return canonical(match.group(0)) if match else None


def closure(distribution: str) -> set[str]:
    seen: set[str] = set()
    todo = [canonical(distribution)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [found for found in map(requirement_name, requirements) if found]
    return seen


def imported_modules(distribution: str) -> set[str]:
    """Top-level modules imported anywhere in the distribution's Python files."""
    modules: set[str] = set()
    for file in metadata.files(distribution) or []:
        if file.suffix != ".py":
            continue
        tree = ast.parse(Path(str(file.locate())).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules


def main(distribution: str, named: list[str]) -> list[str]:
    files = metadata.files(distribution) or []
    own = {file.parts[0] for file in files if file.suffix == ".py"}
    providers = metadata.packages_distributions()
    declared = closure(distribution)
    missing = []
    for module in sorted((imported_modules(distribution) | set(named)) - own - set(sys.stdlib_module_names)):
        dists = {canonical(name) for name in providers.get(module, [])}
        if not dists & declared:
            missing.append(f"{module} ({', '.join(sorted(dists)) or 'not installed'})")
    return missing


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))

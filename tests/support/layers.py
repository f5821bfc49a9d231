"""The import-direction rule of DESIGN.md, as a checker the test suite (and so CI) runs.

    config  ←  engine (core)  ←  risk, brokers, notify, strategies, models  ←  app

A module may import its own package and the packages below its layer, never above, and the
middle packages do not import each other (each implements ports the core defines; the
app layer wires them together). Every import counts — top-level, inside functions, and under
``TYPE_CHECKING`` — because each is a dependency the next engineer has to know about.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: layer number per top-level package; a package may import only packages of a lower layer
LAYERS: dict[str, int] = {
    "config": 0,
    "engine": 1,
    "risk": 2,
    "brokers": 2,
    "notify": 2,
    "strategies": 2,
    "models": 2,
    "app": 3,
}


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.importer} (layer {LAYERS[self.importer]}) imports "
            f"{self.imported} (layer {LAYERS[self.imported.split('.')[0]]}): imports must "
            "point down config ← engine ← risk/brokers/strategies/models ← app"
        )


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the tree, however deeply nested."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def allowed(importer: str, imported: str) -> bool:
    if importer == imported:
        return True
    return LAYERS[imported] < LAYERS[importer]


def violations(root: Path) -> list[Violation]:
    """Every import under ``root``'s layered packages that points sideways or up."""
    found = []
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, module in imported_modules(tree):
                top = module.split(".")[0]
                if top in LAYERS and not allowed(package, top):
                    found.append(Violation(path.relative_to(root), line, package, module))
    return found

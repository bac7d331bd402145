"""The dependency direction (docs/architecture.md): each package imports only packages below it.

protocol and events are the floor; metrics, collaboration and agents build on them and know
nothing of realtime (the sockets); realtime knows them all; tripsage wires everything together.
An import inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Bottom first. A package may import itself and any package on an earlier line.
LAYERS: list[tuple[str, ...]] = [
    ("protocol",),
    ("events",),
    ("metrics",),
    ("collaboration",),
    ("agents",),
    ("realtime",),
    ("tripsage",),
]
RANK = {package: rank for rank, names in enumerate(LAYERS) for package in names}


def imports_against_the_direction(root: Path = ROOT) -> list[str]:
    found = []
    for package, rank in RANK.items():
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    target = name.split(".")[0]
                    if RANK.get(target, -1) > rank:
                        where = path.relative_to(root)
                        found.append(f"{where}:{node.lineno} imports {name} ({target} is above)")
    return found


def test_no_package_imports_a_package_above_it() -> None:
    assert imports_against_the_direction() == []


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    for package in RANK:
        (tmp_path / package).mkdir()
    (tmp_path / "collaboration" / "services.py").write_text(
        "def publish():\n    from realtime import layers\n"
    )
    assert imports_against_the_direction(tmp_path) == [
        "collaboration/services.py:2 imports realtime (realtime is above)"
    ]

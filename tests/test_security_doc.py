"""docs/security.md against the tests it names: every test a row gives as proof exists (a renamed
or deleted test fails here, naming the row), every item of the two checklists has a row, and every
row has a proof or says "not proven" and is listed under Gaps. No server: files are read and the
Python tests parsed with `ast`."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"

# The OWASP WebSocket Security Cheat Sheet's items, numbered by the page in the sheet's order.
CHEAT_SHEET_ITEMS = tuple(f"CS-{n}" for n in range(1, 25))

# The ASVS 5.0 requirements the page must cover: the WebSocket section, and those of
# authentication, sessions, authorization, validation and encoding, tokens and error handling
# that apply to this service.
ASVS_REQUIREMENTS = (
    "4.4.1",
    "4.4.2",
    "4.4.3",
    "4.4.4",
    "6.1.1",
    "6.2.1",
    "6.2.4",
    "6.3.1",
    "6.3.2",
    "6.3.4",
    "6.3.8",
    "6.8.2",
    "7.1.1",
    "7.1.2",
    "7.2.1",
    "7.2.2",
    "7.2.4",
    "7.3.1",
    "7.3.2",
    "7.4.1",
    "7.4.2",
    "7.4.5",
    "8.2.1",
    "8.2.2",
    "8.2.3",
    "8.3.1",
    "8.3.2",
    "1.2.1",
    "1.2.4",
    "1.3.2",
    "1.5.2",
    "2.1.1",
    "2.2.1",
    "2.2.2",
    "2.2.3",
    "2.3.3",
    "2.4.1",
    "9.1.1",
    "16.2.1",
    "16.2.4",
    "16.2.5",
    "16.3.1",
    "16.3.2",
    "9.1.2",
    "9.1.3",
    "9.2.1",
    "9.2.2",
    "9.2.3",
    "16.5.1",
    "16.5.3",
)

NOT_PROVEN = "not proven"
# A row's first cell starts with its id in bold: "**CS-6** Origin ..." or "**4.4.2** ...".
ROW_ID = re.compile(r"\*\*([A-Z]*-?\d+(?:\.\d+)*)\*\*")
# A reference in backquotes: `tests/x.py::test_y`, `tests/x.py::Class::test_y`,
# `clients/js/test/x.test.js::"title"`. Anything else in backquotes with "::" is malformed.
PYTHON_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+(?:::\w+)?)")
JS_REF = re.compile(r'(clients/js/test/[\w./-]+)::"([^"]+)"')


@dataclass
class Row:
    id: str
    line: int
    proof: str
    python: list[tuple[str, str]] = field(default_factory=list)
    js: list[tuple[str, str]] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)


def split_cells(line: str) -> list[str]:
    """A Markdown table line's cells; `\\|` inside a cell is not a separator."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def rows(text: str) -> list[Row]:
    """Every table row of the page whose first cell starts with a bold id; its proof is the
    last cell."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("|"):
            continue
        cells = split_cells(line)
        match = ROW_ID.match(cells[0]) if cells else None
        if match is None or len(cells) < 2:
            continue
        row = Row(id=match[1], line=number, proof=cells[-1])
        for span in re.findall(r"`([^`]*)`", row.proof):
            if "::" not in span:
                continue
            if python := PYTHON_REF.fullmatch(span):
                row.python.append((python[1], python[2]))
            elif js := JS_REF.fullmatch(span):
                row.js.append((js[1], js[2]))
            else:
                row.malformed.append(span)
        found.append(row)
    return found


def section(text: str, title: str) -> str:
    """The body of the "## title" section (empty if there is none)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    return match[1] if match else ""


def collected_tests(path: Path) -> set[str]:
    """The tests pytest would collect by name in a module: `test_x` functions at module level
    and `Class::test_x` for methods of its classes."""
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    names = set()
    for node in tree.body:
        if isinstance(node, functions) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, functions) and item.name.startswith("test")
            )
    return names


def js_has_title(source: str, title: str) -> bool:
    return any(f"{quote}{title}{quote}" in source for quote in ('"', "'", "`"))


def problems(
    text: str,
    root: Path = ROOT,
    required: tuple[str, ...] = CHEAT_SHEET_ITEMS + ASVS_REQUIREMENTS,
) -> list[str]:
    """What is wrong with a security page `text`, its paths read under `root`."""
    found: list[str] = []
    page = rows(text)
    ids = [row.id for row in page]
    for item in required:
        if item not in ids:
            found.append(f"{item}: no row")
    for item in sorted({i for i in ids if ids.count(i) > 1}):
        found.append(f"{item}: more than one row")
    gaps = section(text, "Gaps")
    tests_by_file: dict[str, set[str] | None] = {}
    for row in page:
        where = f"{row.id} (line {row.line})"
        unproven = NOT_PROVEN in row.proof.lower()
        if not (row.python or row.js or unproven):
            found.append(f"{where}: neither a proof (a test) nor {NOT_PROVEN!r}")
        if unproven and not re.search(rf"\b{re.escape(row.id)}\b", gaps):
            found.append(f"{where}: says {NOT_PROVEN!r} but is not listed under Gaps")
        for span in row.malformed:
            found.append(
                f"{where}: {span!r} is no reference: write tests/<file>.py::<test> "
                'or clients/js/test/<file>::"<title>"'
            )
        for path, name in row.python:
            if path not in tests_by_file:
                file = root / path
                tests_by_file[path] = collected_tests(file) if file.is_file() else None
            names = tests_by_file[path]
            if names is None:
                found.append(f"{where}: {path} does not exist (named with {name})")
            elif name not in names:
                found.append(f"{where}: {path}::{name} is no test in {path}")
        for path, title in row.js:
            file = root / path
            if not file.is_file():
                found.append(f"{where}: {path} does not exist")
            elif not js_has_title(file.read_text(), title):
                found.append(f'{where}: {path} has no test titled "{title}"')
    return found


def test_every_proof_names_a_test_that_exists_and_every_item_has_a_row():
    assert problems(DOC.read_text()) == []


def test_the_page_is_linked_from_the_readme_and_the_checks_page():
    assert "docs/security.md" in (ROOT / "README.md").read_text()
    assert "security.md" in (ROOT / "docs" / "checks.md").read_text()


# -- The checker itself, on small pages ---------------------------------------------------------

GOOD = """\
| item | what we do | proof |
| --- | --- | --- |
| **CS-1** One | done | `tests/test_security_doc.py::test_a_page_whose_proofs_exist_passes` |
| **4.4.2** Two | done | not proven: nothing yet |
| **CS-2** Three | done | `clients/js/test/rate-limiter.test.js::"has the seed's table"` |

## Gaps

- **4.4.2**: nothing yet.
"""


def test_a_page_whose_proofs_exist_passes():
    assert problems(GOOD, required=("CS-1", "CS-2", "4.4.2")) == []


def test_a_renamed_or_deleted_test_fails_naming_the_row_and_the_test():
    page = GOOD.replace("test_a_page_whose_proofs_exist_passes", "test_renamed_since")
    assert problems(page, required=("CS-1",)) == [
        "CS-1 (line 3): tests/test_security_doc.py::test_renamed_since is no test in "
        "tests/test_security_doc.py"
    ]
    gone = GOOD.replace("tests/test_security_doc.py", "tests/test_gone.py")
    assert problems(gone, required=()) == [
        "CS-1 (line 3): tests/test_gone.py does not exist (named with "
        "test_a_page_whose_proofs_exist_passes)"
    ]


def test_a_js_title_not_in_its_file_fails():
    page = GOOD.replace("has the seed's table", "has a table nobody wrote")
    assert problems(page, required=()) == [
        "CS-2 (line 5): clients/js/test/rate-limiter.test.js has no test titled "
        '"has a table nobody wrote"'
    ]


def test_a_missing_item_a_row_without_proof_and_an_unlisted_gap_fail():
    page = GOOD.replace("not proven: nothing yet", "we trust it").replace(
        "| **CS-2** Three", "| **CS-3** Three"
    )
    assert problems(page, required=("CS-1", "CS-2", "4.4.2")) == [
        "CS-2: no row",
        "4.4.2 (line 4): neither a proof (a test) nor 'not proven'",
    ]
    unlisted = GOOD.replace("- **4.4.2**: nothing yet.", "")
    assert problems(unlisted, required=()) == [
        "4.4.2 (line 4): says 'not proven' but is not listed under Gaps"
    ]


def test_a_reference_with_parameters_or_in_another_form_is_refused():
    page = GOOD.replace("_proofs_exist_passes`", "_proofs_exist_passes[x]`")
    no_proof, malformed = problems(page, required=())
    assert no_proof == "CS-1 (line 3): neither a proof (a test) nor 'not proven'"
    assert malformed.startswith("CS-1 (line 3): 'tests/test_security_doc.py::test_a_page_whose_")
    assert malformed.endswith(
        '[x]\' is no reference: write tests/<file>.py::<test> or clients/js/test/<file>::"<title>"'
    )


def test_a_method_of_a_test_class_is_found(tmp_path):
    module = tmp_path / "tests" / "test_x.py"
    module.parent.mkdir()
    module.write_text("class TestX:\n    def test_y(self): ...\n\n\ndef helper(): ...\n")
    assert collected_tests(module) == {"TestX::test_y"}
    page = "| **CS-1** One | done | `tests/test_x.py::TestX::test_y`; `tests/test_x.py::helper` |\n"
    assert problems(page, root=tmp_path, required=("CS-1",)) == [
        "CS-1 (line 1): tests/test_x.py::helper is no test in tests/test_x.py"
    ]

"""The reference manual in docs/ is complete against the code.

The lists come from the code's own tables (the checker's task fields, the
option parser, the exit codes), so a field, flag or exit code added to the code
without a line in docs/ fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasker.check.checker import TASK_FIELDS
from tasker.exitcodes import Exit

DOCS = Path(__file__).resolve().parent.parent / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text()


def table_keys(text: str) -> set[str]:
    """The backquoted words that start a row of a Markdown table."""
    return set(re.findall(r"^\|\s*`([^`]+)`", text, re.M))


@pytest.mark.parametrize("field", TASK_FIELDS)
def test_every_task_field_has_a_row_in_the_task_file_reference(field):
    assert field in table_keys(page("taskfile.md")), f"docs/taskfile.md has no row for `{field}`"


@pytest.mark.parametrize("code", sorted({v for k, v in vars(Exit).items() if k.isupper()}))
def test_every_exit_code_is_in_the_command_line_reference(code):
    rows = re.findall(r"^\|\s*(\d+)\s*\|", page("command-line.md"), re.M)
    assert str(code) in rows, f"docs/command-line.md's exit-code table has no row for {code}"


def test_every_page_of_the_index_exists_and_every_page_is_in_the_index():
    index = page("README.md")
    linked = set(re.findall(r"\]\(([\w-]+\.md)\)", index))
    on_disk = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert linked == on_disk


def test_relative_links_between_pages_resolve():
    for path in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).resolve().exists(), f"{path.name} links to missing {target}"


def test_the_readme_links_to_the_reference():
    readme = (DOCS.parent / "README.md").read_text()
    assert "docs/README.md" in readme



def first_cells(text: str) -> list[str]:
    """The first cell of every Markdown table row."""
    return [m.group(1) for m in re.finditer(r"^\|([^|\n]*)\|", text, re.M)]


def _flags() -> list[str]:
    from tasker.cli.options import OPTIONS

    return [o.long for o in OPTIONS]


@pytest.mark.parametrize("flag", _flags())
def test_every_flag_of_the_option_table_is_in_the_command_line_reference(flag):
    cells = first_cells(page("command-line.md"))
    assert any(re.search(rf"`{re.escape(flag)}(?:[ =`])", cell) for cell in cells), \
        f"docs/command-line.md has no row for {flag}"

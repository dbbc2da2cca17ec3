"""No comment, docstring or document points to a file outside the repository.

Users have this repository only, so a reference must name one of its own files
(``docs/NAME.md``; inside docs/*.md also the relative link ``](NAME.md``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

OUTSIDE = re.compile(r"(semantics|cli|language|conditions|execution_types|decisions)\.md|spec/|§")
ALLOWED = re.compile(r"docs/[\w-]+\.md")
ALLOWED_IN_DOCS = re.compile(r"\]\([\w-]+\.md")
# tests/test_docs.py opens the pages of docs/ by name: page("command-line.md")
ALLOWED_PAGE = re.compile(r"""\bpage\("[\w-]+\.md"\)""")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def outside_refs(path: str, text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        rest = ALLOWED.sub("", line)
        if path.startswith("docs/") and path.endswith(".md"):
            rest = ALLOWED_IN_DOCS.sub("", rest)
        if path.endswith(".py"):
            rest = ALLOWED_PAGE.sub("", rest)
        if OUTSIDE.search(rest):
            found.append(f"{path}:{number}: {line.strip()}")
    return found


def test_no_reference_points_outside_the_repository():
    found = []
    for path in tracked_files():
        if path == THIS:
            continue
        data = (ROOT / path).read_bytes() if (ROOT / path).is_file() else b""
        if b"\0" in data:
            continue                                  # binary (images)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            continue
        found += outside_refs(path, text)
    assert not found, "references to files outside the repository:\n" + "\n".join(found)

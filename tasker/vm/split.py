"""``stdout_split`` / ``stderr_split``: keep one field of an output (docs/taskfile.md, D10)."""

from __future__ import annotations

import os
import re

from tasker.runners.output import SPILL_THRESHOLD, Output

KEYWORDS = {
    "space": r" +",
    "whitespace": r"\s+",
    "tab": r"\t+",
    "newline": r"\n+",
    "comma": r",",
    "semicolon": r";",
    "semi": r";",
    "colon": r":",
    "pipe": r"\|",
}


def delimiter_pattern(delimiter: str) -> re.Pattern:
    """The keyword's pattern; any other text is a regular expression (literal if it is not one)."""
    pattern = KEYWORDS.get(delimiter.lower())
    if pattern is None:
        try:
            return re.compile(delimiter)
        except re.error:
            return re.compile(re.escape(delimiter))
    return re.compile(pattern)


def apply_split(out: Output, spec) -> Output:
    """Field ``spec.index`` of ``out`` split by ``spec.delimiter``; unchanged when out of range.

    The field replaces the output.  A spilled output is split as it is read, a
    piece at a time: memory stays bounded however large the file is, and a large
    field goes to a spill file of its own next to the original.
    """
    if spec.index < 0 or out.size == 0:
        return out
    pattern = delimiter_pattern(spec.delimiter)
    if out.spilled:
        return _split_stream(out, pattern, spec.index)
    text = out.text()
    if not text:
        return out
    pieces = pattern.split(text)
    if spec.index >= len(pieces):
        return out
    return Output(pieces[spec.index] or "")


# A match that ends this close to the end of what has been read may still grow or
# move when more text comes, so it is taken only once more text (or the end) is there.
# Delimiters are short: this only matters for a regular expression that matches more
# than 64 KiB at once, which is split as if the output ended every MiB.
MARGIN = 65536


def _split_stream(out: Output, pattern: re.Pattern, index: int) -> Output:
    """``apply_split`` for a spilled output: the same pieces as ``pattern.split``, read in chunks."""
    field = _Field(out.path)
    count = 0           # the number of the piece being read
    buf = ""
    chunks = out.chunks()
    ended = False
    while not ended:
        chunk = next(chunks, None)
        ended = chunk is None
        buf += chunk or ""
        limit = len(buf) if ended else len(buf) - MARGIN
        pos = 0
        for m in pattern.finditer(buf):
            if m.end() > limit:
                limit = min(limit, m.start())
                break
            if count == index:
                field.add(buf[pos:m.start()])
                return field.output()
            count += 1
            for group in m.groups():
                if count == index:
                    return Output(group or "")
                count += 1
            pos = m.end()
        keep = max(pos, limit)
        if count == index:
            field.add(buf[pos:keep])
        buf = buf[keep:]
    if count == index:
        return field.output()
    # The field gets text only once the index is reached, and from then on every way out
    # returns it: here it is empty and has no file.
    return out          # fewer pieces than the index: the output stays as it was


class _Field:
    """The text of the wanted piece: in memory while small, in a mode-600 file beside the spill beyond."""

    def __init__(self, spill_path: str) -> None:
        self.spill_path = spill_path
        self.parts: list[str] = []
        self.held = 0
        self.path: str | None = None
        self.fh = None
        self.size = 0

    def add(self, text: str) -> None:
        if not text:
            return
        if self.fh is not None:
            self._write(text)
            return
        self.parts.append(text)
        self.held += len(text)
        if self.held > SPILL_THRESHOLD:
            self._open()
            for part in self.parts:
                self._write(part)
            self.parts = []

    def _open(self) -> None:
        while True:
            path = f"{self.spill_path}.field{os.urandom(3).hex()}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            self.path, self.fh = path, os.fdopen(fd, "wb")
            return

    def _write(self, text: str) -> None:
        data = text.encode("utf-8")      # chunks() decodes with replacement: no lone surrogates
        self.fh.write(data)
        self.size += len(data)

    def output(self) -> Output:
        if self.fh is None:
            return Output("".join(self.parts))
        self.fh.close()
        return Output(path=self.path, size=self.size)

"""Captured output: in memory up to 1 MiB, in a private spill file beyond (docs/taskfile.md).

``Capture`` receives a stream's bytes chunk by chunk; ``Output`` is the result
the VM stores and conditions read.  A spilled output is never loaded whole:
substring tests, emptiness, line counts and trimmed equality stream over the
file in 1 MiB pieces, and ``@N_stdout@`` reads at most 102,400 characters.
Text is UTF-8 (undecodable bytes replaced) with ``\\r\\n`` and ``\\r`` read as ``\\n``.
"""

from __future__ import annotations

import os

SPILL_THRESHOLD = 1024 * 1024       # bytes held in memory per stream before spilling
SUBSTITUTION_LIMIT = 102_400        # characters of a spilled output that @N_stdout@ yields
CHUNK = 1024 * 1024


def decode(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


class Output:
    """One stream's captured text (``text``), or a spill file (``path``, ``size`` bytes)."""

    __slots__ = ("_text", "path", "size")

    def __init__(self, text: str = "", path: str | None = None, size: int = 0) -> None:
        self._text = text
        self.path = path
        self.size = size if path else len(text)

    @property
    def spilled(self) -> bool:
        return self.path is not None

    def __repr__(self) -> str:
        return f"Output(spilled {self.size} bytes at {self.path})" if self.path else f"Output({self._text!r})"

    # -------------------------------------------------------- whole text (small outputs)

    def text(self) -> str:
        """The whole text.  For a spilled output this reads the file: use sparingly."""
        if self.path is None:
            return self._text
        return "".join(self.chunks())

    def chunks(self):
        """The text in pieces of about 1 MiB (a spilled file is read lazily)."""
        if self.path is None:
            yield self._text
            return
        try:
            with open(self.path, "rb") as fh:
                carry = b""
                while True:
                    data = fh.read(CHUNK)
                    if not data:
                        break
                    data = carry + data
                    cut = _safe_cut(data)
                    carry = data[cut:]
                    yield decode(data[:cut])
                if carry:
                    yield decode(carry)
        except OSError:
            return

    def head(self, limit: int) -> str:
        """At most ``limit`` characters from the start."""
        if self.path is None:
            return self._text[:limit]
        out: list[str] = []
        have = 0
        for piece in self.chunks():
            out.append(piece[: limit - have])
            have += len(out[-1])
            if have >= limit:
                break
        return "".join(out)

    def for_substitution(self) -> str:
        """``@N_stdout@``: trailing newlines removed; a spilled output capped at 102,400 characters."""
        if self.path is None:
            return self._text.rstrip("\n")
        return self.head(SUBSTITUTION_LIMIT).rstrip("\n")

    # -------------------------------------------------------- streaming tests

    def contains(self, needle: str) -> bool:
        """``needle`` occurs in the text with its trailing newlines removed."""
        if self.path is None:
            return needle in self._text.rstrip("\n")
        if needle == "":
            return True
        tail = ""
        keep = len(needle) - 1          # needle is not empty here
        pending = ""
        for piece in self.chunks():
            window = tail + pending + piece
            # hold back trailing newlines: they do not count at the very end
            body = window.rstrip("\n")
            if needle in body:
                return True
            pending = window[len(body):]
            tail = body[-keep:] if keep else ""
        return False

    def is_blank(self, trailing_newlines_only: bool = False) -> bool:
        """Empty once stripped (all whitespace, or only trailing newlines for stderr)."""
        if self.path is None:
            t = self._text.rstrip("\n") if trailing_newlines_only else self._text.strip()
            return t == ""
        for piece in self.chunks():
            rest = piece.replace("\n", "") if trailing_newlines_only else piece.strip()
            if rest:
                return False
        return True

    def line_count(self, trailing_newlines_only: bool = False) -> int:
        """Lines of the stripped text; 0 when it is empty."""
        if self.path is None:
            t = self._text.rstrip("\n") if trailing_newlines_only else self._text.strip()
            return 0 if t == "" else t.count("\n") + 1
        start, end = self._content_bounds(trailing_newlines_only)
        if start >= end:
            return 0
        count = 0
        pos = 0
        for piece in self.chunks():
            lo, hi = max(start - pos, 0), min(end - pos, len(piece))
            if lo < hi:
                count += piece.count("\n", lo, hi)
            pos += len(piece)
        return count + 1

    def stripped_equals(self, other: str) -> bool:
        """The whitespace-trimmed text equals ``other``."""
        if self.path is None:
            return self._text.strip() == other
        start, end = self._content_bounds(False)
        if end - start != len(other):
            return False
        got: list[str] = []
        pos = 0
        for piece in self.chunks():
            lo, hi = max(start - pos, 0), min(end - pos, len(piece))
            if lo < hi:
                got.append(piece[lo:hi])
            pos += len(piece)
        return "".join(got) == other

    def stripped_if_small(self, limit: int = SUBSTITUTION_LIMIT) -> str | None:
        """The trimmed text, or None when it is longer than ``limit`` characters."""
        if self.path is None:
            text = self._text.strip()
            return text if len(text) <= limit else None
        start, end = self._content_bounds(False)
        if end - start > limit:
            return None
        return self.text()[start:end]

    def _content_bounds(self, trailing_newlines_only: bool) -> tuple[int, int]:
        """Character offsets of the first and after the last content character."""
        start = None
        end = 0
        pos = 0
        for piece in self.chunks():
            if trailing_newlines_only:
                stripped = piece.rstrip("\n")     # content starts at 0: start stays None
            else:
                stripped = piece.rstrip()
                if start is None:
                    lead = len(piece) - len(piece.lstrip())
                    if lead < len(piece):
                        start = pos + lead
            if stripped:
                end = pos + len(stripped)
            pos += len(piece)
        return (start or 0), end


def _safe_cut(data: bytes) -> int:
    """A cut point that splits neither a UTF-8 sequence nor a \\r\\n pair."""
    cut = len(data)
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue
        if byte >= 0xC0:
            cut = len(data) - back
        break
    if cut and data[cut - 1:cut] == b"\r":
        cut -= 1
    return cut


class Capture:
    """Collects one stream: bytes in memory until the threshold, then a mode-600 spill file."""

    __slots__ = ("_chunks", "_fh", "_held", "name", "path", "session")

    def __init__(self, name: str, session) -> None:
        self.name = name                # stdout | stderr
        self.session = session          # object with spill_file(name) -> (path, binary fh)
        self._chunks: list[bytes] = []
        self._held = 0
        self._fh = None
        self.path: str | None = None

    def feed(self, data: bytes) -> None:
        if self._fh is not None:
            self._fh.write(data)
            return
        if self._held + len(data) > SPILL_THRESHOLD and self.session is not None:
            self.path, self._fh = self.session.spill_file(self.name)
            for chunk in self._chunks:
                self._fh.write(chunk)
            self._chunks = []
            self._fh.write(data)
            return
        self._chunks.append(data)
        self._held += len(data)

    def finish(self, suffix: str = "") -> Output:
        """The captured output (``suffix`` appended, e.g. the timeout note)."""
        if self._fh is not None:
            if suffix:
                self._fh.write(suffix.encode())
            self._fh.close()
            self._fh = None
            return Output(path=self.path, size=os.path.getsize(self.path))
        return Output(decode(b"".join(self._chunks)) + suffix)

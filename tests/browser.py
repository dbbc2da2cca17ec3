"""Headless Chromium for the report tests: a screenshot and the page's console messages, plus a PNG reader.

Chromium (Debian package ``chromium``) is started once per page with a fresh
profile and everything that would reach the network switched off.  With
``--enable-logging=stderr`` it writes every console message of the page as an
``INFO:CONSOLE`` line; a report runs no script, so any such line (an error, a
resource that failed to load) is a defect.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def screenshot(page: Path, png: Path, size: str = "1280,1600", timeout: float = 180) -> list[str]:
    """Render ``page`` into ``png``; return the console lines Chromium logged for it."""
    exe = chromium()
    assert exe is not None
    with tempfile.TemporaryDirectory(prefix="tasker-chromium-") as profile:
        done = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                               f"--screenshot={png}", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout)
    assert png.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGBA bytes) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        row = _unfilter(line[0], bytearray(line[1:]), prev, channels)
        rows.append(bytes(row) if channels == 4 else _rgba(row))
        prev = row
    return width, height, rows


def _unfilter(kind: int, row: bytearray, prev: bytearray, bpp: int) -> bytearray:
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            row[i] = (row[i] + a) & 255
        elif kind == 2:
            row[i] = (row[i] + b) & 255
        elif kind == 3:
            row[i] = (row[i] + (a + b) // 2) & 255
        elif kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    return row


def _rgba(row: bytearray) -> bytes:
    out = bytearray()
    for i in range(0, len(row), 3):
        out += row[i:i + 3] + b"\xff"
    return bytes(out)


def colour_stats(path: Path) -> tuple[int, float]:
    """(distinct colours, share of pixels that differ from the most common colour)."""
    _w, _h, rows = read_png(path)
    counts: dict[bytes, int] = {}
    for row in rows:
        for i in range(0, len(row), 4):
            px = row[i:i + 4]
            counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    return len(counts), 1 - max(counts.values()) / total

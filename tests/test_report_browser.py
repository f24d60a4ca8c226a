"""The report in a real browser: headless Chromium renders a small run's ``report.html``.

From the DOM Chromium builds (``--dump-dom``): every chart is there and scales (``svg.chart``
with a viewBox), the Pareto front is marked in each of the three objective pairs, infeasible
trials are drawn with their own key in the legend, and the importance charts have bars. From two
screenshots (``--screenshot`` at window widths 1440 and 420, decoded here with zlib and numpy):
the wide layout uses the width (coloured chart pixels span more than 60% of 1440 px, charts
side by side), the narrow one fits its 420 px and still shows the red front points.

Skips only when Chromium is not installed (Debian's ``chromium``; .ci/run installs it where it
can). ``MIXNAS_REPORT_SCREENSHOTS=DIR`` keeps the two screenshots in DIR (docs/figures/ holds a
pair made this way, see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from mixnas.report import write_report
from mixnas.report.data import RunData
from tests.test_report_questions import small_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium): the report's browser test "
    "needs it",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HEIGHT = 1300  # the first screen: the summary and the Pareto charts


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


# -- a PNG reader (8-bit RGB or RGBA, not interlaced: what Chromium writes) -----------------------


def read_png(path: Path) -> np.ndarray:
    """The pixels of a PNG as an (h, w, 3) uint8 array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1)
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: a running sum along the row, per channel
            cur = (np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.int64) % 256).astype(
                np.uint8
            )
            cur = cur.reshape(stride)
        elif kind == 2:  # Up
            cur = line + prev
        else:  # Average (3) and Paeth (4) depend on the byte just decoded: one byte at a time
            cur = np.frombuffer(_sequential(kind, line.tobytes(), prev.tobytes(), bpp), np.uint8)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)[:, :, :3]


def _sequential(kind: int, line: bytes, prev: bytes, bpp: int) -> bytearray:
    cur = bytearray(len(line))
    for i in range(len(line)):
        a = cur[i - bpp] if i >= bpp else 0
        b = prev[i]
        if kind == 3:
            cur[i] = (line[i] + ((a + b) >> 1)) & 255
            continue
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        cur[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    return cur


def test_png_reader_reads_every_filter(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    pixels[2] = pixels[1]  # rows worth predicting
    rows = b""
    prev = bytes(21)
    for kind, row in zip(range(5), pixels, strict=True):
        line = row.tobytes()
        enc = bytearray(21)
        for i in range(21):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], (prev[i - 3] if i >= 3 else 0)
            p = a + b - c
            paeth = (
                a
                if abs(p - a) <= min(abs(p - b), abs(p - c))
                else b
                if abs(p - b) <= abs(p - c)
                else c
            )
            pred = [0, a, b, (a + b) >> 1, paeth][kind]
            enc[i] = (line[i] - pred) & 255
        rows += bytes([kind]) + bytes(enc)
        prev = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 7, 5, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "t.png").write_bytes(png)
    np.testing.assert_array_equal(read_png(tmp_path / "t.png"), pixels)


def coloured_columns(pixels: np.ndarray) -> np.ndarray:
    """Columns holding at least three saturated pixels (chart marks and lines; text, grey
    points and the white page are not saturated)."""
    p = pixels.astype(np.int16)
    saturated = (p.max(axis=2) - p.min(axis=2)) > 60
    return np.flatnonzero(saturated.sum(axis=0) >= 3)


def red_pixels(pixels: np.ndarray) -> int:
    """Pixels of the front's colour, #d62728."""
    r, g, b = (pixels[:, :, k].astype(np.int16) for k in range(3))
    return int(((r > 170) & (g < 90) & (b < 90)).sum())


# -- the test -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(small_run(tmp_path_factory.mktemp("runs")))


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    run = RunData.load(report.parent)
    url = report.resolve().as_uri()
    dom = chromium(["--dump-dom", url], tmp_path / "profile").stdout
    assert dom.count("<svg") >= 10, dom[:500]  # 3 pairs + 3-D, hypervolume, 2 parallel, 3 imp.
    assert dom.count('class="chart"') == dom.count("<svg")

    pareto = dom.split("<h2>Pareto front</h2>")[1].split("<h2>")[0]
    *pairs, three_d = re.findall(r"<svg.*?</svg>", pareto, flags=re.S)
    on_front = int(run.on_front.sum())
    assert len(pairs) == 3 and three_d.count('class="pt3 front"') == on_front
    assert all(p.count('class="pt front"') == on_front for p in pairs)  # marked in every pair
    infeasible = int(((run.trials.status == "ok") & ~run.eligible).sum())
    assert infeasible > 0
    assert all(0 < p.count('class="pt infeasible"') <= infeasible for p in pairs)
    assert all(">infeasible</text>" in p for p in pairs)  # in the legend
    assert "marked in every pair" in pareto

    importance = dom.split("<h2>Importance of the decisions</h2>")[1].split("<h2>")[0]
    assert importance.count('aria-label="Importance for') == 3
    assert importance.count('class="bar"') >= 9
    parallel = dom.split("<h2>Parallel coordinates</h2>")[1].split("<h2>")[0]
    assert ">s1 mixer</text>" in parallel and ">s1 bits</text>" in parallel
    assert "<details><summary>manifest.json as written</summary>" in dom

    shots = {}
    for width in (1440, 420):
        path = tmp_path / f"report-{'wide' if width > 1000 else 'narrow'}.png"
        done = chromium(
            [f"--window-size={width},{HEIGHT}", f"--screenshot={path}", url],
            tmp_path / "profile",
        )
        assert path.is_file(), done.stderr[-2000:]
        shots[width] = read_png(path)
        assert shots[width].shape[:2] == (HEIGHT, width)
    keep = os.environ.get("MIXNAS_REPORT_SCREENSHOTS")
    if keep:
        for path in tmp_path.glob("report-*.png"):
            shutil.copy(path, Path(keep) / path.name)

    wide = coloured_columns(shots[1440])
    assert wide.size and wide.max() - wide.min() > 0.6 * 1440, (wide.min(), wide.max())
    # side by side: the first screen has chart marks in both halves of the page
    assert (wide < 720).any() and (wide > 720).any()
    assert red_pixels(shots[1440]) > 100  # the front's red points are drawn

    narrow = coloured_columns(shots[420])
    assert narrow.size and narrow.max() - narrow.min() > 0.6 * 420
    assert red_pixels(shots[420]) > 30

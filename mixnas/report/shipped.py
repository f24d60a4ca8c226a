"""The report's "Shipped models" section: what ``mixnas ship`` wrote for the run's trained models.

Reads ``<run>/trained/*/export/ship.json`` (written by `mixnas.shipping.ship`) and shows, per
model: the trial, test top-1 (and int8 top-1 when measured), size of each file, params, the
search's latency (measured or predicted) against torch and ONNX Runtime measurements, the gaps,
the allowed gap and a visible flag. The report stays a pure function of files in the run folder:
nothing is measured here. A ship.json that cannot be read is listed with its reason, not skipped.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

TRAINED, EXPORT, SHIP_JSON = "trained", "export", "ship.json"


def shipped_records(run_dir: Path) -> list[tuple[Path, dict[str, Any] | str]]:
    """Every ``trained/*/export/ship.json`` of the run, in folder order: its content, or the
    reason it cannot be read."""
    found: list[tuple[Path, dict[str, Any] | str]] = []
    for path in sorted((run_dir / TRAINED).glob(f"*/{EXPORT}/{SHIP_JSON}")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            found.append((path, f"cannot be read ({err})"))
            continue
        found.append((path, data if isinstance(data, dict) else "is not a JSON object"))
    return found


def has_shipped(run_dir: Path) -> bool:
    return any((run_dir / TRAINED).glob(f"*/{EXPORT}/{SHIP_JSON}"))


def _ms(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else "-"


def _pct(value: Any) -> str:
    return f"{value:+.0%}" if isinstance(value, int | float) else "-"


def _size(files: dict[str, Any], int8: dict[str, Any]) -> str:
    parts = [
        f"{label} {entry['bytes'] / 1024:,.0f} KiB"
        for label, entry in (
            ("onnx", files.get("onnx", {})),
            ("ts", files.get("torchscript", {})),
            ("int8 onnx", int8.get("onnx", {})),
            ("int8 ts", int8.get("torchscript", {})),
        )
        if isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
    ]
    return ", ".join(parts) or "-"


def _row(path: Path, data: dict[str, Any]) -> str:
    source = data.get("source") or {}
    search = data.get("search") or {}
    comparison = data.get("comparison") or {}
    accuracy = data.get("accuracy") or {}
    int8 = data.get("int8") or {}
    files = data.get("files") or {}
    top1 = data.get("test_top1")
    int8_top1 = accuracy.get("int8_onnx", accuracy.get("int8_torch"))
    flagged = bool(data.get("flagged"))
    if "searched_ms" in comparison:
        verdict = (
            "<b style='color:#b00'>FLAGGED</b>: " + escape("; ".join(comparison.get("why", [])))
            if flagged
            else "within"
        )
    else:
        verdict = "not compared: " + escape(str(comparison.get("reason", "")))
    searched = (
        f"{_ms(search.get('value_ms'))} ({escape(str(search.get('kind', '')))}, "
        f"{escape(str(search.get('metric', '')))})"
        if "value_ms" in search
        else "-"
    )
    cells = [
        escape(str(source.get("trial", "-"))),
        f"{top1:.4g}" if isinstance(top1, int | float) else "-",
        f"{int8_top1:.4g}"
        if isinstance(int8_top1, int | float)
        else escape(str(int8.get("status", "-"))),
        escape(_size(files, int8)),
        f"{data.get('params', 0):,}" if isinstance(data.get("params"), int) else "-",
        searched,
        _ms(comparison.get("torch_ms", (data.get("latency") or {}).get("torch", {}).get("ms"))),
        _ms(comparison.get("onnxruntime_ms"))
        + (" (int8)" if comparison.get("onnxruntime_run") == "cpu_int8" else ""),
        _pct(comparison.get("gap_torch")),
        _pct(comparison.get("gap_onnxruntime")),
        _pct(comparison.get("threshold")).lstrip("+"),
    ]
    style = " style='background:#fde8e8'" if flagged else ""
    return (
        f"<tr{style}>"
        + "".join(f"<td>{c}</td>" for c in cells)
        + f"<td class='text'>{verdict}</td>"
        + f"<td class='text'><code>{escape(str(path.parent))}</code></td></tr>"
    )


def shipped_section(run_dir: Path) -> str:
    """The section's HTML (a table; a line per unreadable ship.json)."""
    records = shipped_records(run_dir)
    if not records:
        return "<p>No shipped model (run 'mixnas ship' on a trained folder of this run).</p>"
    head = [
        "trial", "test top1", "int8 top1", "size", "params", "search latency (ms)",
        "torch (ms)", "ONNX Runtime (ms)", "gap torch", "gap ORT", "allowed", "verdict", "export",
    ]  # fmt: skip
    rows = [_row(p, d) for p, d in records if isinstance(d, dict)]
    bad = [f"<p>{escape(str(p))}: {escape(d)}</p>" for p, d in records if isinstance(d, str)]
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    note = (
        "<p class='drawn'>Latencies at the search's batch, threads and precision; a gap is "
        "measured / search - 1. Torch is flagged beyond the allowed gap either way, ONNX Runtime "
        "only when slower (see docs/shipping.md).</p>"
    )
    table = f"<div class='scroll'><table><tr>{header}</tr>{''.join(rows)}</table></div>"
    return table + note + "".join(bad)

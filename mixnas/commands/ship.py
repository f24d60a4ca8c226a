"""``mixnas ship TRAINED_DIR|RUN_DIR``: export trained models with their weights and verify them.

Writes ``<trained folder>/export/`` (TorchScript, ONNX, int8 where the policy asks, spec.json,
train_record.json, ship.json) for one trained folder, or for every ``<run>/trained/*/`` of a run
folder, and prints one summary line per model: files, test accuracy, latency measured with torch
and ONNX Runtime against the search's, and ``FLAGGED`` when the gap is beyond the allowed error
(`mixnas.shipping.verify`). Exit 0 when every model shipped; 1 when a file failed its check
against PyTorch (ship.json lists the problems); 2 on bad input (one line naming the file).
A flagged latency is a finding, not a failure: it is printed and recorded, the exit stays 0.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mixnas.commands.common import emit, positive_int


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number such as 0.25 (got {text!r})") from None
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"must be a fraction > 0, e.g. 0.25 (got {text})")
    return value


def _ms(value: Any) -> str:
    return f"{value:.3g} ms" if isinstance(value, int | float) else "-"


def _top1(value: Any) -> str:
    return f"{value:.4g}%" if isinstance(value, int | float) else "-"


def summary_line(result: dict[str, Any]) -> str:
    """One line per shipped model: where, what, how accurate, how fast, and the verdict."""
    files = result["files"]
    written = [f"{files[k]['path']} ({files[k]['bytes']:,} B)" for k in ("torchscript", "onnx")
               if "path" in files.get(k, {})]  # fmt: skip
    int8 = result["int8"]
    int8_text = (
        ", ".join(
            f"{int8[k]['path']} ({int8[k]['bytes']:,} B)"
            for k in ("torchscript", "onnx")
            if "path" in int8.get(k, {})
        )
        if int8.get("status") == "written"
        else f"int8 {int8.get('status')}: {int8.get('reason', '')}"
    )
    top1 = result.get("test_top1")
    latency = result["latency"]
    ort = _ms(latency["onnxruntime"].get("cpu", {}).get("ms"))
    if "ms" in latency["onnxruntime"].get("cpu_int8", {}):
        ort += f" (int8 {_ms(latency['onnxruntime']['cpu_int8']['ms'])})"
    comparison = result["comparison"]
    if "searched_ms" in comparison:
        verdict = (
            f"search {comparison['searched_ms']:.3g} ms ({result['search']['kind']}, "
            f"allowed gap {comparison['threshold']:.0%}); "
            + ("FLAGGED: " + " | ".join(comparison["why"]) if comparison["flagged"] else "within")
        )
    else:
        verdict = f"not compared: {comparison.get('reason', '')}"
    return (
        f"{result['trained_dir']}: {', '.join(written) or 'no float file'}; {int8_text}; "
        f"test top1 {_top1(top1)}; params {result['params']:,}; "
        f"torch {_ms(latency['torch'].get('ms'))}, ONNX Runtime {ort}; {verdict}"
    )


def cmd_ship(args: argparse.Namespace) -> int:
    from mixnas.shipping import ship, trained_folders

    folders = trained_folders(args.path)
    both = not (args.torchscript or args.onnx)  # neither asked: both
    int8 = "auto" if args.int8 is None else ("on" if args.int8 else "off")
    results = []
    for folder in folders:
        result = ship(
            folder,
            torchscript=args.torchscript or both,
            onnx=args.onnx or both,
            int8=int8,
            batch=args.batch,
            threads=args.threads,
            device=args.device,
            tolerance=args.tolerance,
        )
        results.append(result)
        if not args.json:
            print(summary_line(result))
        for problem in result["problems"]:
            print(f"mixnas ship: {problem}", file=sys.stderr)
    if args.json:
        emit(results if len(results) > 1 else results[0])
    return 1 if any(r["problems"] for r in results) else 0


def add_to(sub: Any) -> None:
    parser = sub.add_parser(
        "ship",
        help="export a trained model with its weights (TorchScript, ONNX, int8) and verify "
        "its latency against the search's",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("path", help="a trained folder (mixnas train's output) or a run folder")
    parser.add_argument("--torchscript", action="store_true", help="TorchScript only (+ --onnx)")
    parser.add_argument("--onnx", action="store_true", help="ONNX only (+ --torchscript)")
    parser.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="int8 files: default where the spec's policy asks for <= 8-bit weights; "
        "--int8 also for a float policy, --no-int8 never",
    )
    parser.add_argument("--batch", type=positive_int, help="timing batch (default: the search's)")
    parser.add_argument(
        "--threads", type=positive_int, help="timing threads (default: the search's)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device to time on: auto (the search's latency device), cpu, cuda, cuda:N",
    )
    parser.add_argument(
        "--tolerance",
        type=_fraction,
        default=0.25,
        help="allowed relative latency gap for a measured search metric, or a predictor that "
        "states no error (default 0.25)",
    )
    parser.add_argument("--json", action="store_true", help="print ship.json instead of a line")
    parser.set_defaults(func=cmd_ship)

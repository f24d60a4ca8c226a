"""Fuzzing the loaders: thousands of mutated space, config, spec and run-folder files through
the CLI, counted by verdict (tests/fuzzing.py has the targets, the mutations and the verdicts).

Every input is answered with exit 0, or exit 2 and one line on stderr; a traceback, an
unexpected exception (the CLI's exit 70), more or less than one error line, or a run past the
time limit is a failure, listed with the seed that reproduces it. Inputs are seeded
(``random.Random(f"{target}-{i}")``), so a run repeats exactly.

    python bench/fuzz.py --n 1000 --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_nb201 import write_section
from tests.fuzzing import FAILURES, TARGETS, Fuzzer

VERDICTS = ("accepted", "refused", *FAILURES)
COMMANDS = {
    "space": "`mixnas space describe FILE`",
    "config": "`mixnas search FILE --check`",
    "spec": "`mixnas build FILE` (specs above the build limit: loaded and costed)",
    "run": "`mixnas doctor`, `report`, `search --resume` on a run folder with one file mutated",
}


def fuzz(target: str, n: int, fuzzer: Fuzzer) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    failures: list[str] = []
    slowest = 0.0
    start = time.perf_counter()
    for i in range(n):
        outcome = fuzzer.one(target, random.Random(f"{target}-{i}"))
        counts[outcome.verdict] += 1
        slowest = max(slowest, outcome.seconds)
        if outcome.failed:
            failures.append(f"{target}-{i}: {outcome.describe()[:300]}")
    return {
        "target": target,
        "n": n,
        "counts": {v: counts[v] for v in VERDICTS},
        "failures": failures,
        "seconds": time.perf_counter() - start,
        "slowest": slowest,
    }


def render(rows: list[dict[str, Any]], n: int, timeout: float, note: str) -> str:
    lines = [
        "## Fuzzing the loaders (`bench/fuzz.py`)",
        "",
        f"Seeded mutants of space, config, spec and run-folder files, {n:,} per target, each "
        "run through the CLI in-process (tests/fuzzing.py: tree mutations such as null, -1, "
        "10^30, a 5,000-character string, a swapped type, a deleted or unknown key; byte "
        "mutations such as flipped or undecodable bytes, a cut file, 5,000 levels of nesting, "
        "a repeated line, a YAML alias bomb). Accepted: exit 0; refused: exit 2 with one "
        "`mixnas: error:` line. A traceback, an unexpected exception (exit 70), an error that "
        f"is not one line, or a run past {timeout:g} s is a failure.",
        "",
        "| target | entry point | inputs | accepted | refused | tracebacks | unexpected "
        "(exit 70) | not one line | hangs | seconds | slowest input (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r["counts"]
        lines.append(
            f"| {r['target']} | {COMMANDS[r['target']]} | {r['n']:,} | {c['accepted']:,} | "
            f"{c['refused']:,} | {c['traceback']} | {c['internal']} | {c['not one line']} | "
            f"{c['hang']} | {r['seconds']:.0f} | {r['slowest']:.2f} |"
        )
    failures = [f for r in rows for f in r["failures"]]
    lines += [""]
    if failures:
        lines += ["Failures (reproduce with the seed `target-i`):", ""]
        lines += [f"- {f}" for f in failures[:40]]
        lines += [""]
    else:
        lines += ["No failures.", ""]
    lines += [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. {note}".rstrip(),
        "",
        f"Command: `python bench/fuzz.py --n {n} --out docs/benchmarks.md`. The seeded subset "
        "in `make test` is tests/test_fuzz.py (hypothesis, derandomized).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="mutated inputs per target")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per input")
    parser.add_argument("--note", default="", help="a sentence about the machine's load")
    parser.add_argument("--out", type=Path, help="markdown file to write the section into")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mixnas-fuzz-") as folder:
        fuzzer = Fuzzer(Path(folder), timeout=args.timeout)
        for target in args.targets.split(","):
            row = fuzz(target, args.n, fuzzer)
            rows.append(row)
            print(
                f"{target}: {row['counts']} in {row['seconds']:.0f} s",
                *row["failures"][:10],
                sep="\n  ",
                flush=True,
            )
    section = render(rows, args.n, args.timeout, args.note)
    if args.out:
        write_section(args.out, section)
    else:
        print(section)
    return 1 if any(r["failures"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

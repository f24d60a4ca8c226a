"""Runs: per-trial overhead of the local and Ray backends, and the report in a real browser.

Overhead: the same search (analytic costs only, so a trial's own work is about a millisecond) runs
with the driver evaluating inline, with one local worker process, and with Ray Tune on a local Ray
(two concurrent trials); the figure is (wall time - start-up) / trials, start-up being the time to
the first finished trial. Browser: the run's ``report.html`` is opened in headless Chromium
(Debian's ``chromium`` package); the rendered DOM must hold one chart per objective pair, the
hypervolume and parallel-coordinates charts, one point per finished trial in each scatter and a row
per front member, and the screenshot must show the red front points.

    python bench/runs.py --trials 40 --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_nb201 import write_section
from mixnas.config import parse_config
from mixnas.records import RunStore
from mixnas.report import write_report

SECTION = "## Runs: backend overhead per trial and the report in a browser"


def _config(name: str, runs_dir: str, trials: int, backend: dict[str, Any]) -> Any:
    return parse_config(
        {
            "name": name,
            "seed": 0,
            "space": "hybrid",
            "objectives": [
                {"metric": "params", "direction": "minimize"},
                {"metric": "macs", "direction": "minimize"},
                {"metric": "bitops", "direction": "minimize"},
            ],
            "strategy": {"name": "nsga2", "options": {"population_size": 10}},
            "budget": {"trials": trials},
            "backend": backend,
            "runs_dir": runs_dir,
        }
    )


def _overhead(backend: str, trials: int, runs_dir: str) -> dict[str, Any]:
    if backend == "ray":
        from mixnas.ray_backend import run_search_ray as run

        settings = {"name": "ray", "workers": 2, "cpus_per_trial": 1}
    else:
        from mixnas.driver import run_search as run

        settings = {"name": "local", "workers": 0 if backend == "inline" else 1}
    config = _config(backend, runs_dir, trials, settings)
    start = time.time()
    summary = run(config, quiet=True)
    wall = time.time() - start
    with RunStore(summary.run_dir) as store:
        records = store.records()
    first = min(r.finished or start for r in records)
    startup = first - start
    per_trial = (wall - startup) / max(len(records) - 1, 1)
    return {
        "backend": backend,
        "trials": len(records),
        "ok": sum(r.status == "ok" for r in records),
        "wall_s": wall,
        "startup_s": startup,
        "per_trial_ms": per_trial * 1e3,
        "run_dir": str(summary.run_dir),
    }


def _browser_check(run_dir: Path, shots: Path | None) -> dict[str, Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return {"browser": "not installed (apt-get install chromium)", "passed": False}
    report = write_report(run_dir)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", report.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    html = dom.stdout
    with RunStore(run_dir) as store:
        records = store.records()
    ok = [r for r in records if r.status == "ok"]
    pareto_rows = len((run_dir / "pareto.csv").read_text().splitlines()) - 1
    svgs = html.count("<svg")
    circles = html.count('class="pt ')  # the points; legend keys are class="key"
    checks = {
        "svg charts": svgs >= 3 + 2,  # 3 objective pairs, hypervolume, parallel coordinates
        "points (3 pairs x ok trials)": circles == 3 * len(ok),
        "front table rows": html.count("<tr>") >= pareto_rows + 1,
        "manifest shown": "space_hash" in html,
    }
    out = Path(tempfile.mkdtemp()) / "report.png" if shots is None else shots / "report.png"
    subprocess.run(
        [
            chromium,
            *flags,
            "--window-size=1280,2400",
            f"--screenshot={out}",
            report.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    red = _red_pixels(out)
    checks["front points visible (red pixels)"] = red > 50
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout
    return {
        "browser": version.strip(),
        "checks": checks,
        "svgs": svgs,
        "circles": circles,
        "ok_trials": len(ok),
        "front": pareto_rows,
        "red_pixels": red,
        "screenshot": str(out),
        "passed": all(checks.values()),
    }


def _red_pixels(path: Path) -> int:
    if not path.is_file():
        return 0
    from PIL import Image

    image = Image.open(path).convert("RGB")
    # the front's colour is #d62728 = (214, 39, 40)
    return sum(1 for r, g, b in image.get_flattened_data() if r > 190 and g < 80 and b < 80)


def _section(rows: list[dict[str, Any]], browser: dict[str, Any], trials: int) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `python bench/runs.py --trials {trials} --out docs/benchmarks.md` "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} when it ended). A trial here is "
        "the analytic `cost` evaluator only (about 1 ms), so the per-trial figure is what the "
        "backend adds: dispatch, the SQLite commit (synchronous=FULL), the event log, the "
        "strategy's ask/tell and the checkpoint.",
        "",
        "| backend | trials | start-up (s) | per trial (ms) | wall (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['trials']} | {row['startup_s']:.1f} | "
            f"{row['per_trial_ms']:.1f} | {row['wall_s']:.1f} |"
        )
    lines += [
        "",
        "Start-up is the time to the first finished trial: importing torch and building the "
        "evaluators in the driver (for the checks) and in each worker; for Ray, starting a local "
        "Ray and its worker processes (reused across trials) as well.",
        "",
        f"Report in a browser ({browser.get('browser')}): "
        + ("passed" if browser.get("passed") else "FAILED")
        + ".",
        "",
    ]
    for name, ok in browser.get("checks", {}).items():
        lines.append(f"- {name}: {'yes' if ok else 'no'}")
    if "svgs" in browser:
        lines.append(
            f"- rendered: {browser['svgs']} SVG charts, {browser['circles']} points for "
            f"{browser['ok_trials']} finished trials, {browser['front']} front members, "
            f"{browser['red_pixels']} red (front) pixels in the screenshot"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--backends", default="inline,local,ray")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--screenshots", type=Path, help="keep the screenshot here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as runs:
        rows = [_overhead(b, args.trials, runs) for b in args.backends.split(",") if b]
        browser = _browser_check(Path(rows[0]["run_dir"]), args.screenshots)
    if args.json:
        print(json.dumps({"backends": rows, "browser": browser}, indent=2, default=str))
    else:
        for row in rows:
            print(re.sub(r"'run_dir': '[^']*', ", "", str(row)))
        print(browser)
    if args.out:
        write_section(args.out, _section(rows, browser, args.trials))
    return 0 if browser.get("passed") else 1


if __name__ == "__main__":
    sys.exit(main())

"""``mixnas scale BASE --budget METRIC=V1,V2,...``: one spec per budget, each meeting it.

BASE is a zoo name, a spec JSON (or an exported record) or ``RUN_DIR:TRIAL_ID``. With ``--json``
each member is printed as one JSON object per line (JSON Lines), in the order of the budgets:
``budget``, ``id``, ``spec``, ``cost`` (the budget's metric as checked, plus the analytic costs),
``meets_budget``, ``dims``, ``rule_note``. ``--out DIR`` writes the member specs and a report.
See docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mixnas.commands.common import fmt_big


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_scale(args: argparse.Namespace) -> int:
    from mixnas.progress import Ticker
    from mixnas.scaling.family import (
        LATENCY_PREFIX,
        describe,
        load_base,
        make_family,
        parse_budget,
    )

    budget = parse_budget(args.budget)
    base = load_base(args.base)
    proxies = _csv(args.proxy)
    # the proxy rule (and a coefficient search) scores candidates for minutes: say how many
    scoring = args.rule == "proxy" or args.search_coefficients
    ticker = Ticker(None, f"scale {args.base}", "candidate", quiet=not scoring)
    try:
        members = make_family(
            base,
            budget,
            args.rule,
            proxies=proxies,
            search_coefs=args.search_coefficients,
            seed=args.seed,
            on_score=ticker.update,
        )
    finally:
        ticker.close()
    if ticker.n:
        ticker.note(f"scale {args.base}: scored {ticker.n} candidates with {', '.join(proxies)}")
    device = args.latency_device
    if device is None and args.out:
        # the report shows predicted latency: on the budget's device, else on this machine
        metric = budget.metric
        device = metric[len(LATENCY_PREFIX) :] if metric.startswith(LATENCY_PREFIX) else "host"
    rows = [
        describe(
            m,
            budget.metric,
            latency_device=device,
            proxies=proxies if args.out else (),
            seed=args.seed,
        )
        for m in members
    ]
    if args.out:
        from mixnas.scaling.report import write_family

        title = f"{args.base}: {args.rule} scaling to {budget.metric}"
        write_family(args.out, rows, title)
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    print(f"{args.rule} scaling of {args.base} ({base.id}) to {budget.metric}")
    print(f"{'budget':>10}  {budget.metric:>12}  {'params':>9}  {'MACs':>9}  dims")
    for row in rows:
        d = row["dims"]
        print(
            f"{fmt_big(row['budget']['value']):>10}  {fmt_big(row['cost'][budget.metric]):>12}  "
            f"{fmt_big(row['cost']['params']):>9}  {fmt_big(row['cost']['macs']):>9}  "
            f"depths {d['depths']} widths {d['widths']} res {d['resolution'] or '-'}"
        )
    if args.out:
        print(f"wrote {len(rows)} member specs and report.html, family.md to {args.out}")
    return 0


def add_to(sub: Any) -> None:
    from mixnas.scaling.family import DEFAULT_PROXIES, RULES

    p = sub.add_parser("scale", help="scale a base spec to a ladder of budgets")
    p.add_argument("base", help="zoo name, spec JSON, or RUN_DIR:TRIAL_ID")
    p.add_argument(
        "--budget",
        required=True,
        help="METRIC=V1,V2,... with METRIC macs, params or latency_ms@DEVICE",
    )
    p.add_argument("--rule", choices=RULES, default="compound", help="scaling rule")
    p.add_argument(
        "--proxy",
        default=",".join(DEFAULT_PROXIES),
        help="proxies (summed) that guide --rule proxy and appear in the report",
    )
    p.add_argument(
        "--search-coefficients",
        action="store_true",
        help="compound: pick (alpha, beta, gamma) on a grid by proxy score (else EfficientNet's)",
    )
    p.add_argument("--latency-device", help="report predicted latency on this device")
    p.add_argument("--seed", type=int, default=0, help="seed of the proxies' weights and batch")
    p.add_argument("--json", action="store_true", help="one JSON object per budget per line")
    p.add_argument("--out", help="folder for the member specs and the report")
    p.set_defaults(func=cmd_scale)

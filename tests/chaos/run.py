"""``make chaos``: the long seeded chaos run, then the bad-input fuzzing and the soak, and one
table of what was done and found.

    python -m tests.chaos.run --seed 7 --scenarios 10 [--fuzz-examples 400] [--soak-days 5]

Scenario ``i`` runs the plan of seed ``seed + i`` (tests/chaos/plan.py), so any scenario of
a run can be repeated alone with ``--seed <its seed> --scenarios 1``. Exit status 1 when any
invariant was violated or any fuzz input crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.chaos.fuzz import FuzzResult, run_fuzz
from tests.chaos.plan import make_plan
from tests.chaos.scenario import Outcome, Scenario
from tests.chaos.soak import SoakResult, run_soak
from tests.conftest import BARS_DIR


def main(argv: list[str] | None = None) -> int:
    """Run everything asked for and print the table; 0 when nothing was violated."""
    args = _parser().parse_args(argv)
    # A daemon killed mid-request makes the simulator's aiohttp log "Error handling request"
    # with a ConnectionResetError: expected here, and not the daemon's log.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    workroot = Path(tempfile.mkdtemp(prefix="magellan-chaos-"))
    began = time.monotonic()
    outcomes = [
        _scenario(args.seed + i, workroot / f"scenario-{args.seed + i}", args.keep)
        for i in range(args.scenarios)
    ]
    fuzz = run_fuzz(args.fuzz_examples, args.seed) if args.fuzz_examples else None
    soak = (
        asyncio.run(run_soak(BARS_DIR, workroot / "soak", args.soak_days))
        if args.soak_days
        else None
    )
    print(table(args, outcomes, fuzz, soak, time.monotonic() - began))
    for outcome in outcomes:
        for violation in outcome.violations:
            print(f"seed {outcome.seed}: {violation}")
    for violation in soak.violations if soak else []:
        print(f"soak: {violation}")
    for crash in fuzz.crashes if fuzz else []:
        print(f"fuzz crash: {crash}")
    if not args.keep:
        shutil.rmtree(workroot, ignore_errors=True)
    failed = _violations(outcomes, soak) or (fuzz is not None and fuzz.crashes)
    return 1 if failed else 0


def _scenario(seed: int, workdir: Path, keep: bool) -> Outcome:
    workdir.mkdir(parents=True)
    outcome = asyncio.run(Scenario(make_plan(seed), BARS_DIR, workdir).run())
    status = "ok" if not outcome.violations else f"{len(outcome.violations)} VIOLATIONS"
    print(
        f"scenario seed {seed} ({outcome.window}): {outcome.orders} orders, "
        f"{sum(outcome.faults.values())} faults, {sum(outcome.kills.values())} SIGKILLs, "
        f"{outcome.wall_seconds:.0f} s: {status}" + (f" [{workdir}]" if keep else ""),
        flush=True,
    )
    return outcome


def table(
    args: argparse.Namespace,
    outcomes: list[Outcome],
    fuzz: FuzzResult | None,
    soak: SoakResult | None,
    wall: float,
) -> str:
    """The one summary table of a run."""
    faults: Counter[str] = Counter()
    kills: Counter[str] = Counter()
    for outcome in outcomes:
        faults.update(outcome.faults)
        kills.update(outcome.kills)
    rows: list[tuple[str, str]] = [
        ("command", f"python -m tests.chaos.run {' '.join(_argv(args))}"),
        ("scenarios", str(len(outcomes))),
        ("orders sent (at the broker)", str(sum(o.orders for o in outcomes))),
        ("faults injected", str(sum(faults.values()))),
        *((f"  {kind}", str(n)) for kind, n in sorted(faults.items())),
        ("SIGKILLs (each followed by a restart)", str(sum(kills.values()))),
        *((f"  at {point}", str(n)) for point, n in sorted(kills.items())),
        ("invariant violations", str(_violations(outcomes, soak))),
    ]
    if fuzz is not None:
        rows += [
            ("fuzz inputs tried", str(sum(fuzz.tried.values()))),
            *((f"  {target}", str(n)) for target, n in sorted(fuzz.tried.items())),
            ("fuzz crashes", str(len(fuzz.crashes))),
        ]
    if soak is not None:
        rows += [
            (f"soak ({soak.days} virtual days, {soak.samples} hourly samples)", ""),
            ("  RSS growth per virtual day", f"{soak.rss_per_day_kib:+.0f} KiB"),
            ("  open fds growth per virtual day", f"{soak.fds_per_day:+.1f}"),
            ("  asyncio tasks growth per virtual day", f"{soak.tasks_per_day:+.1f}"),
            ("  ledger size growth per virtual day", f"{soak.ledger_per_day_kib:+.0f} KiB"),
            (
                "  RSS / fds / tasks at the end",
                f"{soak.last_rss_kib / 1024:.0f} MiB / {soak.last_fds} / {soak.last_tasks}",
            ),
        ]
    rows.append(("wall time", f"{wall:.0f} s"))
    width = max(len(k) for k, _ in rows)
    line = "+" + "-" * (width + 2) + "+" + "-" * 14 + "+"
    body = [
        f"| {k:<{width}} | {v:>12} |" if len(v) <= 12 else f"| {k:<{width}} | {v}" for k, v in rows
    ]
    return "\n".join([line, *body, line])


def _violations(outcomes: list[Outcome], soak: SoakResult | None) -> int:
    return sum(len(o.violations) for o in outcomes) + (len(soak.violations) if soak else 0)


def _argv(args: argparse.Namespace) -> list[str]:
    return [
        f"--seed {args.seed}",
        f"--scenarios {args.scenarios}",
        f"--fuzz-examples {args.fuzz_examples}",
        f"--soak-days {args.soak_days}",
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--seed", type=int, default=1, help="seed of the first scenario")
    parser.add_argument("--scenarios", type=int, default=10, help="how many scenarios")
    parser.add_argument("--fuzz-examples", type=int, default=300, help="inputs per fuzz target")
    parser.add_argument("--soak-days", type=int, default=5, help="virtual days of soak (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep every state dir and log")
    return parser


if __name__ == "__main__":
    sys.exit(main())

"""``make chaos``: the refusal sequences, the busy and the real-window chaos scenarios, the
model-based test of the exit machinery, the bad-input fuzzing and the soak, then one table.

    python -m tests.chaos.run --seed 1 --scenarios 4 --busy-scenarios 7 --refusals alternate
        [--model-examples 2000] [--fuzz-examples 300] [--soak-days 5]

Real-window scenario ``i`` runs the plan of seed ``seed + i`` (tests/chaos/plan.py), busy
scenario ``i`` the busy plan of seed ``seed + i``; refusal sequences are listed in
tests/chaos/refusals.py (``--refusal-point`` and ``--refusal-n`` pick some). Any scenario
can be repeated alone, e.g. ``--scenarios 0 --busy-scenarios 0 --refusal-point EOD
--refusal-n 3 --model-examples 0 --fuzz-examples 0 --soak-days 0 --keep``. Exit status 1
when any invariant was violated, any fuzz input crashed or a model-based example failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.fuzz import FuzzResult, run_fuzz
from tests.chaos.plan import Plan, make_busy_plan, make_plan
from tests.chaos.refusals import KINDS, refusal_plans
from tests.chaos.scenario import Outcome, Scenario
from tests.chaos.soak import SoakResult, run_soak
from tests.conftest import BARS_DIR
from tests.e2e.harness import REPO

MODEL_TEST = "tests/daemon/execution/test_exit_machine.py"


@dataclass
class ModelResult:
    """What the model-based test of the exit machinery did."""

    examples: int = 0
    failures: int = 0
    note: str = ""


def main(argv: list[str] | None = None) -> int:
    """Run everything asked for and print the table; 0 when nothing was violated."""
    args = _parser().parse_args(argv)
    # A daemon killed mid-request makes the simulator's aiohttp log "Error handling request"
    # with a ConnectionResetError: expected here, and not the daemon's log.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    workroot = Path(tempfile.mkdtemp(prefix="magellan-chaos-"))
    began = time.monotonic()
    plans = [
        *_refusal_plans(args),
        *(make_busy_plan(args.seed + i) for i in range(args.busy_scenarios)),
        *(make_plan(args.seed + i) for i in range(args.scenarios)),
    ]
    outcomes = [
        _scenario(plan, workroot / f"scenario-{n}-{plan.seed}", args.keep)
        for n, plan in enumerate(plans)
    ]
    model = run_model(args.model_examples) if args.model_examples else None
    fuzz = run_fuzz(args.fuzz_examples, args.seed) if args.fuzz_examples else None
    soak = (
        asyncio.run(run_soak(BARS_DIR, workroot / "soak", args.soak_days))
        if args.soak_days
        else None
    )
    print(table(args, outcomes, model, fuzz, soak, time.monotonic() - began))
    for outcome in outcomes:
        for violation in outcome.violations:
            print(f"{outcome.window} (seed {outcome.seed}): {violation}")
    for violation in soak.violations if soak else []:
        print(f"soak: {violation}")
    for crash in fuzz.crashes if fuzz else []:
        print(f"fuzz crash: {crash}")
    if model is not None and model.note:
        print(f"model-based: {model.note}")
    if args.keep:
        print(f"kept: {workroot}")
    else:
        shutil.rmtree(workroot, ignore_errors=True)
    failed = (
        _violations(outcomes, soak)
        or (fuzz is not None and fuzz.crashes)
        or (model is not None and model.failures)
    )
    return 1 if failed else 0


def _refusal_plans(args: argparse.Namespace) -> list[Plan]:
    if args.refusals == "none":
        return []
    plans = refusal_plans(kinds=tuple(KINDS))
    if args.refusals == "alternate":  # one kind per count: rejected for odd N, refused even
        plans = [
            p
            for p in plans
            if "replacement" in p.label or p.label.endswith("rejected") == (p.refusals % 2 == 1)
        ]
    if args.refusal_point:
        plans = [p for p in plans if args.refusal_point.lower() in p.label.lower()]
    if args.refusal_n:
        plans = [p for p in plans if p.refusals == args.refusal_n]
    return plans


def _scenario(plan: Plan, workdir: Path, keep: bool) -> Outcome:
    workdir.mkdir(parents=True)
    outcome = asyncio.run(Scenario(plan, BARS_DIR, workdir).run())
    status = "ok" if not outcome.violations else f"{len(outcome.violations)} VIOLATIONS"
    aimed = sum(outcome.aimed.values())
    refusal = ""
    if outcome.refusals:
        refusal = ", point reached" if outcome.refusals_reached else ", POINT NOT REACHED"
    print(
        f"{plan.label or outcome.window} (seed {plan.seed}): {outcome.orders} orders, "
        f"{sum(outcome.faults.values())} faults, {sum(outcome.kills.values())} SIGKILLs "
        f"({sum(outcome.landed.values())} of {aimed} aimed landed){refusal}, "
        f"{outcome.wall_seconds:.0f} s: {status}" + (f" [{workdir}]" if keep else ""),
        flush=True,
    )
    return outcome


def run_model(examples: int, test: str = MODEL_TEST) -> ModelResult:
    """The model-based test of the exit machinery (``MODEL_TEST``, a hypothesis state
    machine reading its example count from ``MAGELLAN_MODEL_EXAMPLES``) through pytest:
    examples run (hypothesis's statistics) and failed tests. Absent: 0, and said so."""
    if not (REPO / test).exists():
        return ModelResult(note=f"{test} does not exist on this branch: 0 examples run")
    env = {**os.environ, "MAGELLAN_MODEL_EXAMPLES": str(examples)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:xdist",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
        test,
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    out = done.stdout + done.stderr
    # "- 150 passing, 0 failing, and 0 invalid test cases" (older: "... passing examples")
    ran = sum(int(n) for n in re.findall(r"(\d+) passing\b", out))
    ran += sum(int(n) for n in re.findall(r"(\d+) failing\b", out))
    failed = sum(int(n) for n in re.findall(r"(\d+) (?:failed|errors?)\b", out))
    note = ""
    if done.returncode != 0:
        failed = max(failed, 1)
        note = f"pytest exited {done.returncode}:\n{_failure_summary(done.stdout, done.stderr)}"
    return ModelResult(examples=ran, failures=failed, note=note)


def _failure_summary(stdout: str, stderr: str) -> str:
    """pytest's own short summary (the ``FAILED`` lines and the count), not the output's
    last lines: those can be warnings written to stderr after it (as on CI)."""
    lines = stdout.strip().splitlines()
    for at, line in enumerate(lines):
        if "short test summary info" in line:
            return "\n".join(lines[at + 1 :])
    return "\n".join((lines or stderr.strip().splitlines())[-15:])


def table(
    args: argparse.Namespace,
    outcomes: list[Outcome],
    model: ModelResult | None,
    fuzz: FuzzResult | None,
    soak: SoakResult | None,
    wall: float,
) -> str:
    """The one summary table of a run."""
    faults: Counter[str] = Counter()
    kills: Counter[str] = Counter()
    aimed: Counter[str] = Counter()
    landed: Counter[str] = Counter()
    for outcome in outcomes:
        faults.update(outcome.faults)
        kills.update(outcome.kills)
        aimed.update(outcome.aimed)
        landed.update(outcome.landed)
    refusal = [o for o in outcomes if o.refusals]
    busy = [o for o in outcomes if o.window.startswith("busy")]
    real = [o for o in outcomes if o not in refusal and o not in busy]
    rows: list[tuple[str, str]] = [
        ("command", f"python -m tests.chaos.run {' '.join(_argv(args))}"),
        ("scenarios", str(len(outcomes))),
        ("orders sent (at the broker)", str(sum(o.orders for o in outcomes))),
        ("  in refusal sequences", str(sum(o.orders for o in refusal))),
        ("  in busy windows", str(sum(o.orders for o in busy))),
        ("  in real-bar windows", str(sum(o.orders for o in real))),
        ("faults injected", str(sum(faults.values()))),
        *((f"  {kind}", str(n)) for kind, n in sorted(faults.items())),
        ("SIGKILLs (each followed by a restart)", str(sum(kills.values()))),
        *((f"  at {point}", str(n)) for point, n in sorted(kills.items())),
        ("aimed kills landed", f"{sum(landed.values())} of {sum(aimed.values())}"),
        *((f"  at {p}", f"{landed[p]} of {n}") for p, n in sorted(aimed.items())),
        ("refusal sequences tried", str(sum(o.refusals for o in outcomes))),
        ("  their point reached", str(sum(o.refusals_reached for o in outcomes))),
        ("  with violations", str(sum(1 for o in refusal if o.violations))),
        (
            "unprotected spells reported (ERROR)",
            str(sum(o.unprotected_reported for o in outcomes)),
        ),
    ]
    if model is not None:
        rows += [
            ("model-based examples", str(model.examples)),
            ("model-based failures", str(model.failures)),
        ]
    rows.append(("invariant violations", str(_violations(outcomes, soak))))
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
    argv = [
        f"--seed {args.seed}",
        f"--scenarios {args.scenarios}",
        f"--busy-scenarios {args.busy_scenarios}",
        f"--refusals {args.refusals}",
    ]
    if args.refusal_point:
        argv.append(f"--refusal-point {args.refusal_point!r}")
    if args.refusal_n:
        argv.append(f"--refusal-n {args.refusal_n}")
    return [
        *argv,
        f"--model-examples {args.model_examples}",
        f"--fuzz-examples {args.fuzz_examples}",
        f"--soak-days {args.soak_days}",
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--seed", type=int, default=1, help="seed of the first scenario")
    parser.add_argument("--scenarios", type=int, default=4, help="real-bar window scenarios")
    parser.add_argument("--busy-scenarios", type=int, default=7, help="busy window scenarios")
    parser.add_argument(
        "--refusals",
        choices=("alternate", "both", "none"),
        default="alternate",
        help="refusal sequences: each point x N=1..5, rejected for odd N and refused (403) "
        "for even N (alternate), both kinds for every N, or none",
    )
    parser.add_argument("--refusal-point", default="", help="only points whose name has this")
    parser.add_argument("--refusal-n", type=int, default=0, help="only sequences of N refusals")
    parser.add_argument(
        "--model-examples",
        type=int,
        default=2000,
        help=f"examples of the model-based test ({MODEL_TEST}; 0: not run)",
    )
    parser.add_argument("--fuzz-examples", type=int, default=300, help="inputs per fuzz target")
    parser.add_argument("--soak-days", type=int, default=5, help="virtual days of soak (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep every state dir and log")
    return parser


if __name__ == "__main__":
    sys.exit(main())

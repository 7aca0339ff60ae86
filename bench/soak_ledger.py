"""The soak's ledger invariant: the daemons' ledger against what the stand-ins billed.

Contract (:func:`check_ledger`), all amounts in integer micro-dollars:
- Billed, from the stand-ins' own records: every Messages API request the Anthropic
  stand-in answered 200, priced at Anthropic's list price for the request's model (input,
  cache reads, cache writes and output at their own rates); every Codegen run created
  through the API, at the stand-in's ``cost_per_run_usd``; every fake Claude Code
  invocation that printed its ``result`` line, at the cost it reported (the fake CLI keeps
  each session's reported total in its state file, per sub-task worktree).
- Compared per unit, where a unit's entries and bills can be told apart: planner entries
  against Anthropic requests by ``(model, tokens)`` (each entry must match one distinct
  200 request with the same usage and the same amount); a Codegen entry against the run
  created with the same ``(issue, sub-task, attempt)``; local-run entries of one sub-task
  against what the fake CLI billed in that sub-task's worktree.
- ``excess``: units where the ledger holds more than was billed (money recorded that no
  stand-in charged, or charged at another amount). Always a violation.
- ``unrecorded``: units billed for more than the ledger holds: a whole request or run the
  daemon paid for and never recorded (its process killed between the answer and the
  entry, or the entry's step replayed after a crash and the replay's answer recorded under
  the same entry id). Reported with the amount, not a violation: see bench/README.md.
- ``unreported_runs``: ledger entries with no amount (a run whose CLI was killed, crashed
  or hung before it reported a cost, so the daemon has no figure); counted, never guessed.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from bench.soak_cluster import LedgerLine
from edge_worker.costs.money import MICRO
from edge_worker.costs.prices import find_price, price_table
from edge_worker.sandbox.world import SandboxWorld

MICROS = 1_000_000


@dataclass
class LedgerFigures:
    """What :func:`check_ledger` found (USD figures rounded to the micro-dollar)."""

    ledger_usd: float = 0.0
    billed_usd: float = 0.0
    unrecorded_usd: float = 0.0
    unrecorded: int = 0  # planner answers, Codegen runs and sub-tasks' CLI totals
    excess: int = 0
    unreported_runs: int = 0
    by_source: dict[str, dict[str, float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def usd(micros: int) -> float:
    return round(micros / MICROS, 6)


def anthropic_bill(model: str, usage: dict[str, int]) -> int | None:
    """What Anthropic charges for one answer's ``usage`` on ``model`` (micro-dollars), at
    the list prices; ``None`` for a model without one."""
    price = find_price(price_table(), model)
    if price is None:
        return None
    rate = Decimal
    total = (
        usage.get("input_tokens", 0) * rate(str(price.input))
        + usage.get("cache_read_input_tokens", 0) * rate(str(price.cached_input))
        + usage.get("cache_creation_input_tokens", 0)
        * rate(str(price.cache_write_input or price.input))
        + usage.get("output_tokens", 0) * rate(str(price.output))
    ) / MICROS
    return int(total.quantize(MICRO, rounding=ROUND_HALF_UP) * MICROS)


class _Check:
    def __init__(self, world: SandboxWorld, ledger: list[LedgerLine]) -> None:
        self.world = world
        self.ledger = ledger
        self.figures = LedgerFigures()
        self.totals: dict[str, Counter[str]] = defaultdict(Counter)

    def unit(self, source: str, name: str, recorded: int, billed: int, bills: int = 1) -> None:
        """Compare one unit; ``bills``: how many bills its unrecorded part is."""
        self.totals[source]["ledger"] += recorded
        self.totals[source]["billed"] += billed
        if recorded > billed:
            self.figures.excess += 1
            self.figures.problems.append(
                f"ledger {source} {name}: ${usd(recorded)} recorded, ${usd(billed)} billed"
            )
        elif billed > recorded:
            self.figures.unrecorded += bills
            self.totals[source]["unrecorded"] += billed - recorded
            self.figures.notes.append(
                f"unrecorded {source} {name}: ${usd(billed)} billed, ${usd(recorded)} recorded"
            )

    def planner(self) -> None:
        """Planner entries against the Anthropic stand-in's 200 answers, by usage."""
        bills: Counter[tuple[str, int, int, int]] = Counter()
        amounts: dict[tuple[str, int, int, int], int] = {}
        for request in self.world.anthropic.requests:
            if request.status != 200 or request.usage is None:
                continue
            model = str(request.body.get("model"))
            u = request.usage
            key = (
                model,
                u.get("input_tokens", 0) + u.get("cache_creation_input_tokens", 0),
                u.get("cache_read_input_tokens", 0),
                u.get("output_tokens", 0),
            )
            bill = anthropic_bill(model, u)
            if bill is None:
                self.figures.problems.append(f"the stand-in billed an unpriced model {model!r}")
                continue
            bills[key] += 1
            amounts[key] = bill
        entries: Counter[tuple[str, int, int, int]] = Counter()
        recorded: Counter[tuple[str, int, int, int]] = Counter()
        for line in self.ledger:
            if line.kind != "planner":
                continue
            key = (
                str(line.model),
                line.input_tokens,
                line.cached_input_tokens,
                line.output_tokens,
            )
            entries[key] += 1
            recorded[key] += line.usd_micros or 0
            if line.usd_micros is not None and line.usd_micros != amounts.get(key):
                self.figures.excess += 1
                self.figures.problems.append(
                    f"planner entry of {line.issue_identifier} at ${usd(line.usd_micros)}, "
                    f"billed at ${usd(amounts.get(key, 0))}"
                )
        for key in set(bills) | set(entries):
            billed = bills[key] * amounts.get(key, 0)
            name = f"{key[0]} x{entries[key]} entries / x{bills[key]} answers"
            self.unit("planner", name, recorded[key], billed, bills[key] - entries[key])

    def codegen(self) -> None:
        """Codegen entries against the runs created for the same sub-task attempt."""
        billed: Counter[tuple[str, str, int]] = Counter()
        for metadata, amount in self.world.codegen.bills():
            key = (
                str(metadata.get("linear_issue_id")),
                str(metadata.get("subtask_key")),
                int(metadata.get("attempt") or 1),
            )
            billed[key] += round(amount * MICROS)
        recorded: Counter[tuple[str, str, int]] = Counter()
        for line in self.ledger:
            if line.executor == "codegen":
                recorded[(line.issue_id, str(line.subtask_key), line.attempt)] += (
                    line.usd_micros or 0
                )
        store = self.world.linear.store
        for key in set(billed) | set(recorded):
            issue = store.issues.get(key[0])
            name = "/".join(map(str, (issue.identifier if issue else key[0], *key[1:])))
            self.unit("codegen", name, recorded[key], billed[key])

    def local(self) -> None:
        """Local-run entries of each sub-task against what its fake CLI reported."""
        billed: Counter[str] = Counter()
        root = self.world.agent_state_root
        for path in sorted(root.glob("*/fake-*-state.json")) if root.exists() else []:
            billed[path.parent.name] += _reported_micros(path)
        recorded: Counter[str] = Counter()
        for line in self.ledger:
            if line.kind != "planner" and line.executor != "codegen":
                recorded[f"{line.issue_identifier}-{line.subtask_key}"] += line.usd_micros or 0
        for key in set(billed) | set(recorded):
            self.unit("local", key, recorded[key], billed[key])

    def run(self) -> LedgerFigures:
        self.planner()
        self.codegen()
        self.local()
        f = self.figures
        f.unreported_runs = sum(1 for line in self.ledger if line.usd_micros is None)
        f.ledger_usd = usd(sum(line.usd_micros or 0 for line in self.ledger))
        f.billed_usd = usd(sum(t["billed"] for t in self.totals.values()))
        f.unrecorded_usd = usd(sum(t["unrecorded"] for t in self.totals.values()))
        f.by_source = {s: {k: usd(v) for k, v in sorted(t.items())} for s, t in self.totals.items()}
        return f


def _reported_micros(path: Path) -> int:
    """What one worktree's fake CLI reported, over its sessions (micro-dollars)."""
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    sessions = state.get("sessions") or {}
    return sum(round(float(s.get("cost", 0.0)) * MICROS) for s in sessions.values())


def check_ledger(world: SandboxWorld, ledger: list[LedgerLine]) -> LedgerFigures:
    """Compare ``ledger`` with what ``world``'s stand-ins billed (see the module doc)."""
    return _Check(world, ledger).run()

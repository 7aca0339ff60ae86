"""Money against the real agent CLIs (``test_real_cli_*``): the pinned npm packages, driven
by the real daemon, talking only to a loopback model stand-in that answers fixed token
counts. A sub-task runs, fails verification, is resumed with feedback and passes; the
ledger must hold exactly what the stand-in served, to the token and to the cent, and the
report and ``edge-worker costs --json`` must say the same.

The CLIs get a private ``HOME`` (and ``CODEX_HOME``), a fake API key and proxies that lead
nowhere for anything but loopback: no real secret, no internet.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edge_worker.costs.cli import run_costs_command
from edge_worker.costs.money import format_usd
from edge_worker.costs.prices import price_table, price_usage
from edge_worker.executors.base import RunStatus
from edge_worker.executors.codex import CodexExecutor
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.sandbox.anthropic import (
    AnthropicStandIn,
    TextAnswer,
    ToolAnswer,
    serve_anthropic,
)
from edge_worker.sandbox.demo_plan import DEMO_SOLUTIONS, demo_plan
from edge_worker.sandbox.openai_responses import (
    Message,
    ResponsesStandIn,
    ShellCall,
    serve_responses,
)
from edge_worker.sandbox.world import SandboxWorld
from edge_worker.settings import CodexSettings, Settings
from tests.support.e2e import E2E, row_of, running
from tests.support.local_agents import init_repo, make_task
from tests.support.real_clis import OFFLINE_PASS_ENV, offline_env, real_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

KEY = "add-function"
SOLUTION_PATH, SOLUTION = next(iter(DEMO_SOLUTIONS[KEY].items()))
# A different length, so the .pyc the failed check left behind is not taken for the fix.
WRONG = SOLUTION.replace("return a + b", "return a - b  # wrong")
FAKE_KEY = "sk-loopback-not-a-secret"
TOKEN_KINDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
)

CODEX_MODEL = "gpt-5-codex"
CODEX_USAGE = {
    "input_tokens": 100_000,
    "cached_input_tokens": 20_000,
    "cache_write_input_tokens": 10_000,
    "output_tokens": 5_000,
    "reasoning_output_tokens": 2_000,
}
# gpt-5-codex list prices, USD per million: input 1.25 (a cache write too), cached 0.125,
# output 10 (reasoning is output). Per answer: 80,000 x 1.25 + 20,000 x 0.125 + 5,000 x 10
# = $0.1525.
CODEX_USD_PER_ANSWER = Decimal("0.1525")


def one_subtask_plan(executor_hint: str) -> dict[str, Any]:
    plan = demo_plan(sys.executable)
    subtask = next(s for s in plan["subtasks"] if s["key"] == KEY)
    return {
        "summary": plan["summary"],
        "subtasks": [{**subtask, "depends_on": [], "executor": executor_hint}],
    }


def write_file(path: str, content: str) -> str:
    """A shell command writing ``content`` to ``path`` (quoting-proof)."""
    encoded = base64.b64encode(content.encode()).decode()
    return f"echo {encoded} | base64 -d > {path}"


def write_codex_config(codex_home: Path, base_url: str) -> None:
    """Point Codex at the loopback stand-in (a provider speaking the Responses API)."""
    (codex_home / "config.toml").write_text(
        f'model = "{CODEX_MODEL}"\n'
        'model_provider = "loopback"\n'
        "check_for_update_on_startup = false\n"
        "[model_providers.loopback]\n"
        'name = "loopback stand-in"\n'
        f'base_url = "{base_url}"\n'
        'env_key = "LOOPBACK_MODEL_KEY"\n'
        'wire_api = "responses"\n'
    )


def ledger_rows(e2e: E2E, issue_id: str, executor: str) -> list[dict[str, Any]]:
    keys = ("kind", "attempt", "input_tokens", "cached_input_tokens", "output_tokens", "usd")
    rows = e2e.query(
        "SELECT kind, attempt, input_tokens, cached_input_tokens, output_tokens, usd_micros "
        "FROM cost_entries WHERE issue_id = ? AND executor = ? ORDER BY created_at",
        issue_id,
        executor,
    )
    return [dict(zip(keys, row, strict=True)) for row in rows]


def costs_json(state_dir: Path, identifier: str) -> dict[str, Any]:
    out = io.StringIO()
    settings = Settings(state_dir=state_dir)
    assert run_costs_command(settings, day=None, issue=identifier, as_json=True, out=out) == 0
    data = json.loads(out.getvalue())
    assert isinstance(data, dict)
    return data


def test_real_cli_codex_resume_is_charged_what_the_model_served(tmp_path: Path) -> None:
    codex = real_cli("codex")
    model = ResponsesStandIn(api_key=FAKE_KEY)
    model.script(
        ShellCall(write_file(SOLUTION_PATH, WRONG), usage=CODEX_USAGE),
        Message("Wrote calc/add.py.", usage=CODEX_USAGE),
        # The resume, after verification failed:
        ShellCall(write_file(SOLUTION_PATH, SOLUTION), usage=CODEX_USAGE),
        Message("Fixed add: it adds now.", usage=CODEX_USAGE),
    )
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    plan = one_subtask_plan("local")
    with (
        serve_responses(model) as base_url,
        SandboxWorld(tmp_path / "world", plan=plan) as world,
    ):
        write_codex_config(codex_home, base_url)
        env = {
            **offline_env(tmp_path / "home"),
            "CODEX_HOME": str(codex_home),
            "LOOPBACK_MODEL_KEY": FAKE_KEY,
            "EDGE_WORKER_STRATEGY": "cost-optimized",  # the cheapest local one: Codex
            "EDGE_WORKER_CODEX__BINARY": str(codex),
            "EDGE_WORKER_CODEX__MODEL": CODEX_MODEL,
            "EDGE_WORKER_CODEX__PASS_ENV": ",".join(
                ["CODEX_HOME", "LOOPBACK_MODEL_KEY", *OFFLINE_PASS_ENV]
            ),
        }
        issue_id = world.new_issue()
        state = tmp_path / "state"
        with running(world, state, **env) as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id, timeout=180) == "done", e2e.log()[-4000:]
            identifier = world.linear.store.find_issue(issue_id).identifier
            report = e2e.report(issue_id)
            rows = ledger_rows(e2e, issue_id, "codex")
            log = e2e.log()
            (child,) = world.linear.store.children_of(issue_id)

    served = model.served
    assert served.responses == 4
    assert [r.status for r in model.requests] == [200] * 4, [r.path for r in model.requests]
    assert all(r.headers.get("authorization") == f"Bearer {FAKE_KEY}" for r in model.requests)

    # The ledger holds what was served, run by run: the resume is not charged twice.
    # (Local verification is recorded at $0 and no tokens.)
    assert [(r["kind"], r["attempt"]) for r in rows] == [
        ("run", 1),
        ("verification", 1),
        ("resume", 2),
        ("verification", 2),
    ]
    checks = [r for r in rows if r["kind"] == "verification"]
    assert all(r["input_tokens"] == r["output_tokens"] == r["usd"] == 0 for r in checks)
    runs = [r for r in rows if r["kind"] != "verification"]
    for row in runs:
        assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (
            2 * CODEX_USAGE["input_tokens"],
            2 * CODEX_USAGE["cached_input_tokens"],
            2 * CODEX_USAGE["output_tokens"],
        )
        assert row["usd"] == int(2 * CODEX_USD_PER_ANSWER * 1_000_000)
    assert sum(r["input_tokens"] for r in rows) == served.input_tokens
    assert sum(r["cached_input_tokens"] for r in rows) == served.cached_input_tokens
    assert sum(r["output_tokens"] for r in rows) == served.output_tokens
    expected_usd = CODEX_USD_PER_ANSWER * served.responses
    assert sum(r["usd"] for r in rows) == int(expected_usd * 1_000_000)

    # The report's row and `edge-worker costs --json` say the same.
    assert row_of(report, child.identifier)[5] == format_usd(expected_usd), report
    costs = costs_json(state, identifier)
    lines = [line for line in costs["lines"] if line["executor"] == "codex"]
    assert sum(Decimal(str(line["usd"])) for line in lines) == expected_usd
    assert tuple(sum(line[name] for line in lines) for name in TOKEN_KINDS) == (
        served.input_tokens,
        served.cached_input_tokens,
        served.cache_write_input_tokens,
        served.output_tokens,
        served.reasoning_output_tokens,
    )
    total = re.search(r"\*\*Total:\*\* (\$[\d,.]+)", report)
    assert total is not None and Decimal(total.group(1)[1:]) == Decimal(
        str(costs["total"]["usd"])
    ).quantize(Decimal("0.01"))

    # The CLI's notice (no metadata for this model) reached the log and failed nothing.
    assert "codex_stream.notice" in log and "Model metadata" in log


CLAUDE_MODEL = "claude-sonnet-4-5"
CLAUDE_USAGE = {
    "input_tokens": 100_000,
    "cache_read_input_tokens": 20_000,
    "cache_creation_input_tokens": 10_000,
    "output_tokens": 5_000,
}
# claude-sonnet-4-5 list prices, USD per million: input 3, cache read 0.30, cache write
# 3.75, output 15. Per answer: 300,000 + 6,000 + 37,500 + 75,000 = $0.4185.
CLAUDE_USD_PER_ANSWER = Decimal("0.4185")


def test_real_cli_claude_code_resume_is_charged_what_the_model_served(tmp_path: Path) -> None:
    claude = real_cli("claude-code")
    model = AnthropicStandIn(api_key=FAKE_KEY)

    def bash(command: str) -> ToolAnswer:
        return ToolAnswer(
            {"command": command, "description": "write the file"}, name="Bash", usage=CLAUDE_USAGE
        )

    model.script(
        bash(write_file(SOLUTION_PATH, WRONG)),
        TextAnswer("Wrote calc/add.py.", usage=CLAUDE_USAGE),
        # The resume, after verification failed:
        bash(write_file(SOLUTION_PATH, SOLUTION)),
        TextAnswer("Fixed add: it adds now.", usage=CLAUDE_USAGE),
    )
    plan = one_subtask_plan("local")
    with (
        serve_anthropic(model) as base_url,
        SandboxWorld(tmp_path / "world", plan=plan) as world,
    ):
        env = {
            **offline_env(tmp_path / "home"),
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": FAKE_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "EDGE_WORKER_STRATEGY": "local-only",  # Claude Code first
            "EDGE_WORKER_CLAUDE__BINARY": str(claude),
            "EDGE_WORKER_CLAUDE__MODEL": CLAUDE_MODEL,
            "EDGE_WORKER_CLAUDE__ALLOWED_TOOLS": "Bash",
            "EDGE_WORKER_CLAUDE__PASS_ENV": ",".join(
                [
                    "ANTHROPIC_BASE_URL",
                    "ANTHROPIC_API_KEY",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
                    "DISABLE_AUTOUPDATER",
                    *OFFLINE_PASS_ENV,
                ]
            ),
        }
        issue_id = world.new_issue()
        state = tmp_path / "state"
        with running(world, state, **env) as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id, timeout=180) == "done", e2e.log()[-4000:]
            identifier = world.linear.store.find_issue(issue_id).identifier
            report = e2e.report(issue_id)
            rows = ledger_rows(e2e, issue_id, "claude-code")
            (child,) = world.linear.store.children_of(issue_id)

    answers = len(model.successful_requests)
    assert answers == 4, [(r.path, r.status, r.problem) for r in model.requests]
    assert all(r.headers.get("x-api-key") == FAKE_KEY for r in model.requests)
    # Claude Code's convention in the ledger: input counts cache reads and writes too.
    per_answer = (
        CLAUDE_USAGE["input_tokens"]
        + CLAUDE_USAGE["cache_read_input_tokens"]
        + CLAUDE_USAGE["cache_creation_input_tokens"],
        CLAUDE_USAGE["cache_read_input_tokens"],
        CLAUDE_USAGE["cache_creation_input_tokens"],
        CLAUDE_USAGE["output_tokens"],
        0,  # the stand-in serves no thinking
    )

    runs = [r for r in rows if r["kind"] != "verification"]
    assert [(r["kind"], r["attempt"]) for r in runs] == [("run", 1), ("resume", 2)]
    for row in runs:
        tokens = (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"])
        assert tokens == (2 * per_answer[0], 2 * per_answer[1], 2 * per_answer[3])
        assert row["usd"] == int(2 * CLAUDE_USD_PER_ANSWER * 1_000_000)
    expected_usd = CLAUDE_USD_PER_ANSWER * answers
    assert sum(r["usd"] for r in rows) == int(expected_usd * 1_000_000)

    assert row_of(report, child.identifier)[5] == format_usd(expected_usd), report
    costs = costs_json(state, identifier)
    lines = [line for line in costs["lines"] if line["executor"] == "claude-code"]
    assert sum(Decimal(str(line["usd"])) for line in lines) == expected_usd
    assert tuple(sum(line[name] for line in lines) for name in TOKEN_KINDS) == tuple(
        answers * count for count in per_answer
    )


async def test_real_cli_codex_failed_turn_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model refuses the request (400): the real CLI's failed turn fails the run,
    unpriced, while its notice about the model stays a notice."""
    codex = real_cli("codex")
    model = ResponsesStandIn(api_key=FAKE_KEY)  # nothing scripted: every request gets 400
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    with serve_responses(model) as base_url:
        write_codex_config(codex_home, base_url)
        for name, value in {
            **offline_env(tmp_path / "home"),
            "CODEX_HOME": str(codex_home),
            "LOOPBACK_MODEL_KEY": FAKE_KEY,
        }.items():
            monkeypatch.setenv(name, value)
        settings = CodexSettings(
            binary=str(codex),
            model=CODEX_MODEL,
            pass_env=["CODEX_HOME", "LOOPBACK_MODEL_KEY", *OFFLINE_PASS_ENV],
            timeout_seconds=120,
        )
        executor = CodexExecutor(
            settings,
            WorktreeManager(tmp_path / "worktrees"),
            pricer=lambda name, usage: price_usage(price_table(), name, usage),
        )
        repo = init_repo(tmp_path / "project")
        with capture_logs() as logs:
            result = await executor.follow(await executor.start(make_task(repo)))

    assert result.status is RunStatus.FAILED
    assert result.error and "no answer left" in result.error
    assert result.cost_usd is None
    assert model.requests and all(r.status == 400 for r in model.requests)
    assert any(entry["event"] == "codex_stream.notice" for entry in logs)

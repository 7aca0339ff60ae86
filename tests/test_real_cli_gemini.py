"""The real Gemini CLI (npm ``@google/gemini-cli``, pinned in ``.ci/setup-agent-clis.sh``)
behind the Gemini executor, against a loopback stand-in of the Gemini API: the stream the
executor parses, the session it resumes, and the tokens it prices are the real CLI's.

Skips with the reason when npm or the registry is unavailable outside CI (fails in CI).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_worker.costs.prices import DEFAULT_PRICES, price_usage
from edge_worker.executors.base import RunStatus, TaskLimits, Usage
from edge_worker.executors.gemini import GeminiExecutor, insecure_ancestor
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.sandbox.gemini_api import DEFAULT_USAGE, GeminiStandIn, serve_gemini
from edge_worker.settings import GeminiSettings
from tests.support.local_agents import init_repo, make_task
from tests.support.real_clis import OFFLINE_PASS_ENV, offline_env, real_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FAKE_KEY = "gemini-loopback-key"
MODEL = "gemini-2.5-pro"


@pytest.fixture
def secure_root(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory with no group- or world-writable directory above it: the real
    CLI ignores its per-run settings file otherwise (``/tmp`` is world-writable)."""
    gemini = real_cli("gemini")
    base = gemini.resolve().parents[3] if insecure_ancestor(tmp_path / "x") else tmp_path
    root = Path(tempfile.mkdtemp(prefix="gemini-real-", dir=base))
    root.chmod(0o755)
    if insecure_ancestor(root / "x") is not None:
        pytest.skip("no scratch directory without a world-writable directory above it")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def price_of_one_answer() -> float:
    usage = Usage(
        input_tokens=DEFAULT_USAGE["promptTokenCount"] - DEFAULT_USAGE["cachedContentTokenCount"],
        cached_input_tokens=DEFAULT_USAGE["cachedContentTokenCount"],
        output_tokens=DEFAULT_USAGE["candidatesTokenCount"] + DEFAULT_USAGE["thoughtsTokenCount"],
    )
    cost = price_usage(DEFAULT_PRICES, MODEL, usage)
    assert cost is not None
    return cost


async def test_real_cli_gemini_resume_is_charged_what_the_model_served(
    secure_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gemini = real_cli("gemini")
    model = GeminiStandIn(api_key=FAKE_KEY, answers=deque(["First answer.", "Second answer."]))
    with serve_gemini(model) as base_url:
        for name, value in offline_env(secure_root / "home").items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", base_url)
        settings = GeminiSettings(
            binary=str(gemini),
            model=MODEL,
            auth_type="gemini-api-key",
            max_turns=5,
            pass_env=["GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", *OFFLINE_PASS_ENV],
            timeout_seconds=120,
        )
        executor = GeminiExecutor(
            settings,
            WorktreeManager(secure_root / "worktrees"),
            pricer=lambda name, usage: price_usage(DEFAULT_PRICES, name, usage),
        )
        repo = init_repo(secure_root / "project")
        task = make_task(repo, limits=TaskLimits(wall_clock_seconds=120))

        first = await executor.start(task)
        result = await executor.follow(first)
        assert result.status is RunStatus.SUCCEEDED, (result.error, model.requests)
        assert result.summary == "First answer."
        assert result.session_id
        assert result.cost_usd == pytest.approx(price_of_one_answer())

        second = await executor.resume(first, task, "Please say more.")
        again = await executor.follow(second)
        assert again.status is RunStatus.SUCCEEDED, (again.error, model.requests)
        assert again.summary == "Second answer."
        assert again.session_id == result.session_id
        # charged per invocation: the resumed run pays for its own answer only
        assert again.cost_usd == pytest.approx(price_of_one_answer())

    generated = [r for r in model.requests if r["status"] == 200]
    assert len(generated) == 2
    assert all(r["path"] == f"/v1beta/models/{MODEL}:streamGenerateContent" for r in generated)
    history = json.dumps(generated[1]["body"]["contents"])
    assert "First answer." in history and "Please say more." in history  # the same session
    assert task.description in history

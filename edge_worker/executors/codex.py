"""Codex, run locally in the sub-task's worktree (executor name ``codex``).

Contract: runs ``<binary> exec --json --sandbox workspace-write -C <worktree> [--model M]
PROMPT``; feedback continues the thread with ``<binary> exec --json --sandbox
workspace-write -C <worktree> [--model M] resume <thread id> PROMPT`` (exec's options go
before its ``resume`` subcommand). Codex has no system-prompt option, so the role prompt
precedes the task prompt. Images attached to the issue (placed in the worktree) go with the
first prompt as ``--image=<paths>``. Codex reports tokens but no money: the cost is
``pricer(model, usage)``, and ``None`` from the pricer (or a run that never completed a turn)
means unpriced, never $0. Everything else is
:class:`~edge_worker.executors.local_cli.LocalCliExecutor`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from edge_worker.executors.base import RunResult, Task, Usage
from edge_worker.executors.codex_stream import CodexStreamParser, codex_run_result
from edge_worker.executors.local_cli import LocalCliExecutor
from edge_worker.executors.stream_types import Ending, StreamParser
from edge_worker.executors.task_prompt import ATTACHMENTS_DIR, as_positional, with_role
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.settings import CodexSettings

Pricer = Callable[[str | None, Usage], float | None]
"""``pricer(model, usage)`` -> USD, or None when the model has no price."""


def codex_argv(
    settings: CodexSettings,
    *,
    workdir: Path,
    prompt: str,
    resume_session: str | None = None,
    images: Sequence[str] = (),
) -> list[str]:
    """The Codex command line (pure). ``images`` (paths) are attached to the prompt as
    image input, in the ``--image=a,b`` form so the variadic option cannot swallow the
    prompt."""
    argv = [settings.binary, "exec", "--json", "--sandbox", "workspace-write", "-C", str(workdir)]
    if settings.model:
        argv += ["--model", settings.model]
    if images:
        argv.append("--image=" + ",".join(images))
    if resume_session:
        argv += ["resume", resume_session]
    return [*argv, as_positional(prompt)]


class CodexExecutor(LocalCliExecutor[CodexSettings]):
    """The Codex CLI behind the executor protocol."""

    name = "codex"

    def __init__(
        self,
        settings: CodexSettings,
        worktrees: WorktreeManager,
        *,
        pricer: Pricer,
        verification_timeout_seconds: float = 600.0,
    ) -> None:
        super().__init__(
            settings, worktrees, verification_timeout_seconds=verification_timeout_seconds
        )
        self.pricer = pricer

    def build_argv(
        self, task: Task, *, workdir: Path, prompt: str, resume_session: str | None
    ) -> list[str]:
        images: list[str] = []
        if resume_session is None:
            prompt = with_role(task.role_prompt, prompt)
            images = [
                str(workdir / ATTACHMENTS_DIR / Path(file.name).name)
                for file in task.attachments
                if (file.media_type or "").startswith("image/")
                and (workdir / ATTACHMENTS_DIR / Path(file.name).name).is_file()
            ]
        return codex_argv(
            self.settings,
            workdir=workdir,
            prompt=prompt,
            resume_session=resume_session,
            images=images,
        )

    def new_parser(self) -> StreamParser:
        return CodexStreamParser()

    def to_result(self, parser: StreamParser, ending: Ending) -> RunResult:
        assert isinstance(parser, CodexStreamParser)
        # Tokens are only known once a turn completed; before that the spend is unknown.
        cost = self.pricer(self.settings.model, parser.usage) if parser.turns_completed else None
        return codex_run_result(parser, ending, model=self.settings.model, cost_usd=cost)

"""GitHub API requests per sub-task, from a verified branch to its linked pull request.

Ships ``--subtasks`` sub-tasks of one issue (each a real commit on its own branch) through
``ship_subtask`` against the GitHub stand-in on loopback, as a GitHub App with labels and a
reviewer configured, then ships them all a second time (the repeat after review feedback or
a crash). Prints the stand-in's count of REST requests per sub-task for both rounds (git's
own HTTP requests for the push are counted apart). Target: at most 6 per sub-task.

    .venv/bin/python bench/github_requests.py --subtasks 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_worker.delivery import text
from edge_worker.delivery.github_client import AppInstallation, GitHubClient
from edge_worker.delivery.ship import RepositoryDelivery, ship_subtask
from tests.support.github import (
    APP_ID,
    INSTALLATION_ID,
    OWNER,
    REPO,
    app_keys,
    commit_on_branch,
    served_github,
    work_repository,
)


async def measure(subtasks: int, root: Path) -> dict[str, object]:
    keys = app_keys()
    with served_github(root / "github", keys, installation_id=INSTALLATION_ID) as github:
        work = work_repository(root / "work", github.repository_path(OWNER, REPO))
        target = RepositoryDelivery(
            OWNER, REPO, github.clone_url(OWNER, REPO), labels=("edge-worker",),
            reviewers=("octocat",),
        )  # fmt: skip
        auth = AppInstallation(
            app_id=APP_ID, private_key=keys.private_pem, installation_id=INSTALLATION_ID
        )
        rounds = []
        async with httpx.AsyncClient() as http:
            client = GitHubClient(http, base_url=github.base_url, auth=auth)
            for _round in range(2):
                before = len(github.calls)
                for n in range(subtasks):
                    branch = f"edge-worker/ENG-1-task{n}"
                    commit_on_branch(work, branch, f"f{n}.txt", f"{_round}\n")
                    facts = text.PullRequestFacts("ENG-1", f"task{n}", f"Task {n}")
                    await ship_subtask(
                        client, target, facts, worktree=work,
                        local_branch=branch, remote_branch=branch,
                    )  # fmt: skip
                rounds.append((len(github.calls) - before) / subtasks)
        return {
            "subtasks": subtasks,
            "requests_per_subtask_first": rounds[0],
            "requests_per_subtask_repeat": rounds[1],
            "pull_requests": len(github.pulls[(OWNER, REPO)]),
            "token_exchanges": auth.exchanges,
            "contract_violations": len(github.contract_violations),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subtasks", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        print(json.dumps(asyncio.run(measure(args.subtasks, Path(root))), indent=2))


if __name__ == "__main__":
    main()

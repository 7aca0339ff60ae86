"""The GitHub part of ``make demo``: a stand-in the daemon delivers pull requests to.

Contract: :func:`demo_github` serves a GitHub stand-in (token auth) with ``acme/calc``
holding the demo repository's ``main``, and yields the daemon's environment for it and the
``delivery`` table for the demo repository; it yields ``None`` when the stand-in cannot run
(``jsonschema``, a development dependency, is missing, or GitHub's description is not in
``../shared``: the stand-in answers from its examples), so the demo runs without delivery.
:func:`print_pull_requests` prints each pull request and the sub-issue it is linked from.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_worker.sandbox.linear_store import LinearStore
from edge_worker.sandbox.server import serve_in_thread

OWNER, NAME = "acme", "calc"
DEMO_GITHUB_TOKEN = "ghp_sandbox_demo_token"


@dataclass
class DemoGitHub:
    """The served stand-in, the daemon's environment for it, the repository's delivery."""

    stand_in: Any
    env: dict[str, str]
    delivery: dict[str, Any]


@contextmanager
def demo_github(root: Path, repository: Path) -> Iterator[DemoGitHub | None]:
    """See the module contract."""
    try:
        from edge_worker.sandbox.github import GitHubStandIn
    except ImportError:
        yield None
        return
    from edge_worker.sandbox.github_schema import spec_path

    if not spec_path().is_file():
        print(f"   (no GitHub stand-in: {spec_path()} is absent; pull requests are skipped)")
        yield None
        return
    stand_in = GitHubStandIn(root, personal_token=DEMO_GITHUB_TOKEN)
    bare = stand_in.add_repository(OWNER, NAME)
    subprocess.run(["git", "push", "--quiet", str(bare), "main"], cwd=repository, check=True)
    with serve_in_thread(stand_in.app) as url:
        stand_in.base_url = url
        env = {"EDGE_WORKER_GITHUB__API_URL": url, "EDGE_WORKER_GITHUB__TOKEN": DEMO_GITHUB_TOKEN}
        delivery = {
            "owner": OWNER,
            "name": NAME,
            "remote_url": stand_in.clone_url(OWNER, NAME),
            "labels": ["edge-worker"],
        }
        yield DemoGitHub(stand_in, env, delivery)


def print_pull_requests(github: DemoGitHub | None, store: LinearStore) -> None:
    """Each pull request the daemon opened, with the sub-issue that links it."""
    if github is None:
        return
    print("\n== pull requests on the GitHub stand-in (real commits in a bare repository)")
    for pull in github.stand_in.pulls.get((OWNER, NAME), []):
        url = f"{github.stand_in.base_url}/{OWNER}/{NAME}/pull/{pull.number}"
        linked = [
            store.issues[a.issue_id].identifier
            for a in store.attachments.values()
            if a.url == url and a.issue_id in store.issues
        ]
        print(f"   #{pull.number} {pull.title}  [{pull.head} -> {pull.base}]")
        print(f"      {url}  linked on Linear from: {', '.join(linked) or 'nothing'}")

"""Push a sub-task's branch to the repository's remote with a token git asks for.

Contract:
- :func:`push_branch` runs ``git push <url> <local>:refs/heads/<remote>`` in the worktree.
  The URL carries no credentials. git gets the token by running :data:`ASKPASS_SCRIPT`
  (``GIT_ASKPASS``), which reads it from a 0600 file in a private temporary directory that is
  deleted when the push ends: the token is never in a URL, an argument, an environment
  variable or a log line, and the agent's processes never see any of it. Stored credential
  helpers are switched off for the push so nothing is written to disk by git.
- A refused push raises :class:`~edge_worker.delivery.github_client.DeliveryError` with kind
  ``push`` (protected branch, non-fast-forward), ``auth`` or ``not_found`` and a one-line
  reason; the local branch is untouched, so the work is kept.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from edge_worker.delivery.github_client import DeliveryError

TOKEN_FILE_ENV = "EDGE_WORKER_ASKPASS_TOKEN_FILE"
ASKPASS_SCRIPT = f"""#!/bin/sh
case "$1" in
  Username*) echo x-access-token ;;
  *) cat "${TOKEN_FILE_ENV}" ;;
esac
"""
PROTECTED = "the branch is protected on GitHub"
NOT_FAST_FORWARD = "the remote branch has commits the local branch lacks (non-fast-forward)"
PUSH_TIMEOUT_SECONDS = 300.0
_SCRUBBED_ENV = ("GIT_ASKPASS", "SSH_ASKPASS", "GIT_TERMINAL_PROMPT", TOKEN_FILE_ENV)


def classify_push_failure(stderr: str) -> DeliveryError:
    """What a failed ``git push`` means, from its error output (sans-I/O)."""
    text = stderr.lower()
    if "protected branch" in text or "pre-receive hook declined" in text:
        return DeliveryError("push", PROTECTED)
    if "non-fast-forward" in text or "fetch first" in text or "[rejected]" in text:
        return DeliveryError("push", NOT_FAST_FORWARD)
    # Match git's own phrases only: the remote URL's port may contain "401" or "404".
    if "not found" in text or "returned error: 404" in text:
        return DeliveryError("not_found")
    if "authentication failed" in text or "returned error: 40" in text:
        return DeliveryError("auth")
    return DeliveryError("push", "git could not reach the remote")


async def push_branch(
    worktree: Path,
    *,
    remote_url: str,
    local_branch: str,
    remote_branch: str,
    token: str,
    force: bool = False,
) -> None:
    """Push ``local_branch`` to ``remote_branch`` at ``remote_url`` (see module contract);
    ``force`` replaces the remote branch (only for a branch the daemon alone writes)."""
    with tempfile.TemporaryDirectory(prefix="edge-worker-askpass-") as private:
        folder = Path(private)
        folder.chmod(0o700)
        token_file = folder / "token"
        token_file.touch(mode=0o600)
        token_file.write_text(token, encoding="utf-8")
        askpass = folder / "askpass"
        askpass.write_text(ASKPASS_SCRIPT, encoding="utf-8")
        askpass.chmod(0o700)
        env = {key: value for key, value in os.environ.items() if key not in _SCRUBBED_ENV}
        env.update(
            {"GIT_ASKPASS": str(askpass), TOKEN_FILE_ENV: str(token_file)},
            GIT_TERMINAL_PROMPT="0",
        )
        process = await asyncio.create_subprocess_exec(
            "git",
            "-c",
            "credential.helper=",
            "push",
            "--porcelain",
            remote_url,
            f"{'+' if force else ''}refs/heads/{local_branch}:refs/heads/{remote_branch}",
            cwd=worktree,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(PUSH_TIMEOUT_SECONDS):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise DeliveryError("push", "git did not finish in time") from None
    if process.returncode != 0:
        raise classify_push_failure(out.decode(errors="replace") + err.decode(errors="replace"))

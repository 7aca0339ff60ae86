"""The real agent CLIs from npm, for the ``test_real_cli_*`` tests.

:func:`real_cli` runs ``.ci/setup-agent-clis.sh`` (pinned versions, installed once into a
cache outside the clone) and returns the path of the named CLI. When npm or the registry
is unavailable the test is skipped with the reason, except where the real CLIs are
required (``EDGE_WORKER_REAL_CLIS=required``, set by ``.ci/run``, or ``CI`` set): there it
fails.

:func:`offline_env` is what keeps a real CLI on loopback: a private ``HOME`` and proxies
that lead nowhere for everything but ``127.0.0.1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

SETUP_SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "setup-agent-clis.sh"
REQUIRED_ENV = "EDGE_WORKER_REAL_CLIS"
DEAD_PROXY = "http://127.0.0.1:9"
"""Nothing listens on port 9: a request that is not for loopback fails at once."""

OFFLINE_PASS_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY")


def _required() -> bool:
    return os.environ.get(REQUIRED_ENV) == "required" or bool(os.environ.get("CI"))


def _unavailable(reason: str) -> NoReturn:
    if _required():
        pytest.fail(f"the real agent CLIs are required here, but {reason}")
    pytest.skip(f"real agent CLI unavailable outside CI: {reason}")


def real_cli(name: str) -> Path:
    """The installed executable of ``name`` (``codex`` or ``claude-code``)."""
    if shutil.which("npm") is None:
        _unavailable("npm is not installed")
    try:
        done = subprocess.run(
            ["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=900
        )
    except subprocess.TimeoutExpired:
        _unavailable("installing from the npm registry took over 15 minutes")
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        first = "; ".join(lines[:2]) or f"exit code {done.returncode}"
        _unavailable(f"installing from the npm registry failed: {first[:400]}")
    for line in done.stdout.splitlines():
        found, _, path = line.partition(" ")
        if found == name and Path(path).is_file():
            return Path(path)
    _unavailable(f"{SETUP_SCRIPT.name} did not install {name}: {done.stdout.strip()}")


def offline_env(home: Path) -> dict[str, str]:
    """Environment for a daemon whose agent CLIs must reach nothing but loopback."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "HTTPS_PROXY": DEAD_PROXY,
        "HTTP_PROXY": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
    }

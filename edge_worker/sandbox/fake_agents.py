"""Put the fake agent CLIs where a test or the demo can run them as ``claude`` and ``codex``.

:func:`install_fake_agents` writes two tiny executable wrappers into a directory: point
``settings.claude.binary`` / ``settings.codex.binary`` at them, or put the directory first
on ``PATH``. Each wrapper ``exec``s this interpreter on the fake script, so the wrapper's
pid is the fake's pid.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

FAKE_CLAUDE = Path(__file__).with_name("fake_claude.py")
FAKE_CODEX = Path(__file__).with_name("fake_codex.py")


@dataclass(frozen=True)
class FakeAgents:
    """Paths of the installed wrappers."""

    claude: Path
    codex: Path


def _wrapper(target: Path, script: Path) -> Path:
    target.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} "$@"\n',
        encoding="utf-8",
    )
    target.chmod(0o755)
    return target


def install_fake_agents(bin_dir: Path) -> FakeAgents:
    """Write ``claude`` and ``codex`` wrappers into ``bin_dir`` (created if needed)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    return FakeAgents(
        claude=_wrapper(bin_dir / "claude", FAKE_CLAUDE),
        codex=_wrapper(bin_dir / "codex", FAKE_CODEX),
    )

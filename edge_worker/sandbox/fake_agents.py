"""Put the fake agent CLIs where a test or the demo runs them: ``claude``, ``codex``, ``gemini``.

:func:`install_fake_agents` writes tiny executable wrappers into a directory: point
``settings.claude.binary`` (``codex``, ``gemini``) at them, or put the directory first
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
FAKE_GEMINI = Path(__file__).with_name("fake_gemini.py")


@dataclass(frozen=True)
class FakeAgents:
    """Paths of the installed wrappers."""

    claude: Path
    codex: Path
    gemini: Path


def _wrapper(target: Path, script: Path) -> Path:
    target.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} "$@"\n',
        encoding="utf-8",
    )
    target.chmod(0o755)
    return target


def install_fake_agents(bin_dir: Path) -> FakeAgents:
    """Write ``claude``, ``codex`` and ``gemini`` wrappers into ``bin_dir`` (created if needed)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    return FakeAgents(
        claude=_wrapper(bin_dir / "claude", FAKE_CLAUDE),
        codex=_wrapper(bin_dir / "codex", FAKE_CODEX),
        gemini=_wrapper(bin_dir / "gemini", FAKE_GEMINI),
    )

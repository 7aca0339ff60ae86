"""The ``world`` fixture of the end-to-end tests: a default sandbox world (the Linear,
GitHub and Codegen stand-ins and the fake CLIs) under the test's ``tmp_path``, stopped
afterwards. A module that needs another plan defines its own ``world``.

Use with ``pytest_plugins = ("tests.support.world_fixtures",)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_worker.sandbox.world import SandboxWorld


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    with SandboxWorld(tmp_path / "world") as started:
        yield started

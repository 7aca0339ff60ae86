"""Build ``deploy/Dockerfile`` and run its image with podman and buildah, as this machine allows.

No registry can be reached and ``podman run`` cannot start containers here, so:

- :func:`local_base` runs ``deploy/local-base.sh``, which makes (or finds cached) a stand-in
  for ``python:3.11-slim`` from Debian's packages, and returns its image name.
- :func:`build_image` builds the real Dockerfile with ``podman build --isolation=chroot``
  (docker format, so the ``HEALTHCHECK`` is kept) from the repository root, with
  ``deploy/Dockerfile.dockerignore``; it raises :class:`ContainerError` with the tail of
  the build log when the build fails.
- :func:`inspect_image` reads what the image says about itself (command, user, volumes,
  health check, stop signal, size, layers).
- :class:`WorkingContainer` is one ``buildah from`` container of the image; ``run`` runs a
  command to its end and ``start`` spawns one (``buildah run --isolation chroot``: the
  image's environment, working directory and user, the host's network), with extra
  environment and a host directory bound at the state volume. ``remove`` deletes it.
- :func:`process_of` finds the process a ``buildah run`` started (a descendant of its pid),
  which is what a container runtime signals on ``stop``; :func:`kill_tree` ends a
  ``buildah run`` and everything under it.
- :func:`image_paths` lists every path in the image's root file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_worker.executors.process import all_pids, proc_stat
from tests.support.deploy import DEPLOY_DIR, REPO_ROOT

CONTAINER_TOOLS = ("podman", "buildah", "mmdebstrap")
LOCAL_BASE_SCRIPT = DEPLOY_DIR / "local-base.sh"
DOCKERFILE = DEPLOY_DIR / "Dockerfile"
IGNORE_FILE = DEPLOY_DIR / "Dockerfile.dockerignore"
BASE_TIMEOUT_SECONDS = 600
BUILD_TIMEOUT_SECONDS = 600
RUN_TIMEOUT_SECONDS = 120


class ContainerError(RuntimeError):
    """A podman/buildah step that failed; the message carries its output's tail."""


def missing_tools() -> list[str]:
    """The container tools that are not on PATH."""
    return [tool for tool in CONTAINER_TOOLS if shutil.which(tool) is None]


def _checked(command: list[str], *, timeout: float, what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise ContainerError(f"{what} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def local_base() -> str:
    """The name of the local stand-in base image (made or found cached)."""
    out = _checked([str(LOCAL_BASE_SCRIPT)], timeout=BASE_TIMEOUT_SECONDS, what="local-base.sh")
    return out.strip().splitlines()[-1]


def _image_id(tag: str) -> str | None:
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def build_image(tag: str, base: str) -> None:
    """``podman build`` the real Dockerfile on ``base`` from the repository root.

    The image the tag named before, if another, is removed with its layers, so repeated
    builds of a changing tree do not fill the machine's image store.
    """
    previous = _image_id(tag)
    _checked(
        [
            "podman",
            "build",
            "--isolation=chroot",
            "--format=docker",
            "--layers",
            f"--build-arg=BASE_IMAGE={base}",
            f"--file={DOCKERFILE}",
            f"--ignorefile={IGNORE_FILE}",
            f"--tag={tag}",
            str(REPO_ROOT),
        ],
        timeout=BUILD_TIMEOUT_SECONDS,
        what="podman build",
    )
    if previous is not None and previous != _image_id(tag):
        subprocess.run(["podman", "rmi", previous], capture_output=True, timeout=120)


@dataclass(frozen=True)
class ImageConfig:
    """What an image declares about how it runs, and its measurements."""

    cmd: list[str]
    user: str
    env: dict[str, str]
    volumes: list[str]
    healthcheck: list[str]
    stop_signal: str
    size_bytes: int
    layers: int


def inspect_image(tag: str) -> ImageConfig:
    """Read the image's configuration with ``podman image inspect``."""
    (data,) = json.loads(
        _checked(["podman", "image", "inspect", tag], timeout=60, what="podman image inspect")
    )
    config: dict[str, Any] = data["Config"]
    health: dict[str, Any] = data.get("Healthcheck") or config.get("Healthcheck") or {}
    test: list[str] = list(health.get("Test") or [])
    if test[:1] == ["CMD"]:
        test = test[1:]
    return ImageConfig(
        cmd=list(config.get("Cmd") or []),
        user=str(config.get("User", "")),
        env=dict(item.partition("=")[::2] for item in config.get("Env") or []),
        volumes=sorted(config.get("Volumes") or {}),
        healthcheck=test,
        stop_signal=str(config.get("StopSignal", "")),
        size_bytes=int(data["Size"]),
        layers=len(data["RootFS"]["Layers"]),
    )


class WorkingContainer:
    """One ``buildah from`` container of an image; commands run in it with chroot isolation."""

    def __init__(self, image: str) -> None:
        self.name = f"edge-worker-test-{uuid.uuid4().hex[:12]}"
        _checked(["buildah", "from", "--name", self.name, image], timeout=120, what="buildah from")

    def _command(
        self, command: list[str], env: Mapping[str, str], volume: Path | None, target: str
    ) -> list[str]:
        argv = ["buildah", "run", "--isolation", "chroot"]
        for name, value in env.items():
            argv += ["--env", f"{name}={value}"]
        if volume is not None:
            argv += ["--volume", f"{volume}:{target}"]
        return [*argv, self.name, "--", *command]

    def run(
        self,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        volume: Path | None = None,
        target: str = "",
        timeout: float = RUN_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the container to its end."""
        argv = self._command(command, env or {}, volume, target)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def start(
        self,
        command: list[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        volume: Path | None = None,
        target: str = "",
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` in the container; its output goes to ``log``."""
        argv = self._command(command, env or {}, volume, target)
        with log.open("ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def remove(self) -> None:
        subprocess.run(["buildah", "rm", self.name], capture_output=True, timeout=120)


@contextlib.contextmanager
def working_container(image: str) -> Iterator[WorkingContainer]:
    """A :class:`WorkingContainer` removed at the end of the block."""
    container = WorkingContainer(image)
    try:
        yield container
    finally:
        container.remove()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        if (stat := proc_stat(pid)) is not None:  # else the process has gone
            children.setdefault(stat.ppid, []).append(pid)
    return children


def cmdline(pid: int) -> list[str]:
    """A process's arguments (empty once it has gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def process_of(root: int, command: list[str], timeout: float = 30.0) -> int:
    """The pid of the descendant of ``root`` running ``command``: the command's words end
    its arguments (a script is run by its interpreter); buildah's own helpers, whose
    arguments end the same way, are passed over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = _children()
        pending = list(children.get(root, []))
        while pending:
            pid = pending.pop()
            args = cmdline(pid)
            if (
                args
                and not Path(args[0]).name.startswith("buildah")  # its own helpers
                and len(args) >= len(command)
                and args[-len(command) + 1 :] == command[1:]
                and Path(args[-len(command)]).name == command[0]
            ):
                return pid
            pending.extend(children.get(pid, []))
        time.sleep(0.1)
    raise AssertionError(f"no process of {command} under pid {root} within {timeout}s")


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` (a ``buildah run`` this test started) and all its descendants,
    deepest first, so nothing it started keeps the port or the volume."""
    children = _children()
    order: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        order.append(pid)
        pending.extend(children.get(pid, []))
    for pid in reversed(order):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def process_uids(pid: int) -> tuple[int, int]:
    """The real and effective uid of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            real, effective = line.split()[1:3]
            return int(real), int(effective)
    raise AssertionError(f"no Uid line for pid {pid}")


def image_paths(image: str) -> list[str]:
    """Every path in the image's root file system, absolute as seen inside it."""
    with working_container(image) as container:
        mount = Path(
            _checked(["buildah", "mount", container.name], timeout=60, what="buildah mount").strip()
        )
        try:
            paths: list[str] = []
            for directory, dirnames, filenames in os.walk(mount):
                relative = "/" + os.path.relpath(directory, mount).removeprefix(".")
                base = relative.rstrip("/")
                paths.extend(f"{base}/{name}" for name in dirnames + filenames)
            return paths
        finally:
            subprocess.run(["buildah", "umount", container.name], capture_output=True, timeout=60)

"""Helpers for delivery tests: an app key pair, a served GitHub stand-in, a work repository."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edge_worker.sandbox.github import GitHubStandIn
from edge_worker.sandbox.server import serve_in_thread

OWNER, REPO = "acme", "shop"
APP_ID = "4242"
INSTALLATION_ID = 77


@dataclass(frozen=True)
class AppKeys:
    private_pem: str
    public_pem: str


def app_keys() -> AppKeys:
    """A fresh RSA key pair for a stand-in GitHub App."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return AppKeys(private, public)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def work_repository(path: Path, origin: Path) -> Path:
    """A clone-like repository with ``main`` pushed to the bare ``origin`` (by path)."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "config", "user.email", "agent@example.com")
    git(path, "config", "user.name", "Agent")
    (path / "README.md").write_text("shop\n")
    git(path, "add", ".")
    git(path, "commit", "--quiet", "-m", "initial")
    git(path, "push", "--quiet", str(origin), "main")
    return path


def commit_on_branch(repo: Path, branch: str, filename: str, content: str) -> str:
    """Commit ``filename`` on ``branch`` (created from the current HEAD if new)."""
    existing = git(repo, "branch", "--list", branch)
    git(repo, "checkout", "--quiet", *([] if existing else ["-b"]), branch)
    (repo / filename).write_text(content)
    git(repo, "add", filename)
    git(repo, "commit", "--quiet", "-m", f"change {filename}")
    return git(repo, "rev-parse", "HEAD")


@contextmanager
def served_github(root: Path, keys: AppKeys, **kwargs: object) -> Iterator[GitHubStandIn]:
    """A stand-in with ``acme/shop`` created, served on loopback (``base_url`` set)."""
    stand_in = GitHubStandIn(
        root,
        app_id=int(APP_ID),
        app_public_key=keys.public_pem,
        **kwargs,  # type: ignore[arg-type]
    )
    stand_in.add_repository(OWNER, REPO)
    with serve_in_thread(stand_in.app) as url:
        stand_in.base_url = url
        yield stand_in

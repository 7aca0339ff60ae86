"""A loopback stand-in for the part of GitHub's REST API and git hosting the daemon uses.

Contract:
- Operations served (paths exactly as ``shared/github/rest-api.json`` names them): create an
  installation access token, list / create / get / update pull requests, add labels, request
  reviewers. Every JSON request body is checked against the operation's documented request
  schema (a violation is answered 422 and recorded) and every JSON response against the
  documented response for its status (a violation is recorded and answered 500), so a test
  asserting ``stand_in.contract_violations == []`` proves both sides kept the contract.
- Authentication like GitHub's: the token endpoint takes an RS256 JWT signed with the app's
  key (``iss`` = app id); every other call takes an unexpired installation token or the
  configured personal token (``Authorization: token|Bearer``). A revoked installation gets
  404 on the token endpoint and 401 for its tokens.
- Git over smart HTTP at ``/<owner>/<repo>.git`` through ``git http-backend`` on a real bare
  repository under ``root``: HTTP Basic auth with a valid token as the password (401 with a
  ``WWW-Authenticate`` challenge otherwise, which is what makes git ask ``GIT_ASKPASS``).
  Pull requests read their head commit from that repository, so their commits are real.
  :meth:`GitHubStandIn.protect` makes a branch reject pushes (a pre-receive hook).
- Every response carries ``X-RateLimit-*`` headers; :meth:`GitHubStandIn.fail_next` scripts
  failures (e.g. 403 with ``Retry-After``). Requests are recorded in :attr:`calls`; the
  Basic-auth passwords git sent are kept only as a count in :attr:`git_auth_uses`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import json
import secrets
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge_worker.sandbox import github_schema

TOKEN_PATH = "/app/installations/{installation_id}/access_tokens"
PULLS_PATH = "/repos/{owner}/{repo}/pulls"
PULL_PATH = "/repos/{owner}/{repo}/pulls/{pull_number}"
LABELS_PATH = "/repos/{owner}/{repo}/issues/{issue_number}/labels"
REVIEWERS_PATH = "/repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers"
TOKEN_LIFETIME_SECONDS = 3600
RATE_LIMIT = 5000
_DOCS = "https://docs.github.com/rest"


@dataclass(frozen=True)
class CallRecord:
    """One request as the stand-in saw it (no credentials)."""

    method: str
    path: str
    status: int
    body: Any = None


@dataclass
class _Token:
    installation_id: int
    expires_at: float


@dataclass
class _Pull:
    number: int
    owner: str
    repo: str
    title: str
    body: str
    head: str
    base: str
    draft: bool
    state: str = "open"
    merged: bool = False
    labels: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    created_at: str = ""


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubStandIn:
    """State and behaviour of the stand-in; :attr:`app` serves it."""

    def __init__(
        self,
        root: Path,
        *,
        app_id: int = 4242,
        app_public_key: str | None = None,
        installation_id: int = 77,
        personal_token: str | None = None,
        clock: Any = time.time,
    ) -> None:
        self.root = root
        self.app_id = app_id
        self.app_public_key = app_public_key
        self.installation_id = installation_id
        self.personal_token = personal_token
        self.clock = clock
        self.base_url = ""  # set by whoever serves the app, for html_url and clone URLs
        self.revoked = False
        self.calls: list[CallRecord] = []
        self.contract_violations: list[str] = []
        self.git_auth_uses = 0
        self.git_auth_refusals = 0
        self.pulls: dict[tuple[str, str], list[_Pull]] = {}
        self._tokens: dict[str, _Token] = {}
        self._numbers = itertools.count(1)
        self._failures: dict[str, deque[tuple[int, float | None]]] = {}
        self._lock = threading.Lock()
        self.app = self._build_app()

    # -- scripting -------------------------------------------------------------------------

    def add_repository(self, owner: str, repo: str) -> Path:
        """Create the bare repository ``owner/repo`` and return its path."""
        path = self.repository_path(owner, repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True
        )
        self.pulls.setdefault((owner, repo), [])
        return path

    def repository_path(self, owner: str, repo: str) -> Path:
        """Where the bare repository ``owner/repo`` lives on disk."""
        return self.root / owner / f"{repo}.git"

    def clone_url(self, owner: str, repo: str) -> str:
        """The HTTP URL git pushes to (no credentials in it)."""
        return f"{self.base_url}/{owner}/{repo}.git"

    def protect(self, owner: str, repo: str, branch: str) -> None:
        """Pushes to ``branch`` are declined, as for a protected branch."""
        hook = self.repository_path(owner, repo) / "hooks" / "pre-receive"
        hook.write_text(
            "#!/bin/sh\nwhile read old new ref; do\n"
            f'  if [ "$ref" = "refs/heads/{branch}" ]; then\n'
            f'    echo "GH006: Protected branch update failed for refs/heads/{branch}." >&2\n'
            "    exit 1\n  fi\ndone\n",
            encoding="utf-8",
        )
        hook.chmod(0o755)

    def fail_next(
        self, operation: str, status: int, *, retry_after: float | None = None, times: int = 1
    ) -> None:
        """The next ``times`` calls of ``operation`` (a path template) fail with ``status``."""
        self._failures.setdefault(operation, deque()).extend([(status, retry_after)] * times)

    def revoke_installation(self) -> None:
        """The app was uninstalled: no new tokens, and the issued ones stop working."""
        self.revoked = True

    def issued_tokens(self) -> list[str]:
        """Every installation token handed out (for tests that look for leaks)."""
        return list(self._tokens)

    def merge(self, owner: str, repo: str, number: int) -> None:
        """Mark pull request ``number`` merged (as a person pressing the button would)."""
        pull = self._pull(owner, repo, number)
        pull.state, pull.merged = "closed", True

    def head_sha(self, owner: str, repo: str, branch: str) -> str | None:
        """The commit ``branch`` points at in the bare repository, if it exists."""
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=self.repository_path(owner, repo),
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip() or None

    # -- HTTP ------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/app/installations/{installation_id:int}/access_tokens", self._token,
                      methods=["POST"]),
                Route("/repos/{owner}/{repo}/pulls", self._pulls, methods=["GET", "POST"]),
                Route("/repos/{owner}/{repo}/pulls/{number:int}", self._pull_one,
                      methods=["GET", "PATCH"]),
                Route("/repos/{owner}/{repo}/issues/{number:int}/labels", self._labels,
                      methods=["POST"]),
                Route("/repos/{owner}/{repo}/pulls/{number:int}/requested_reviewers",
                      self._reviewers, methods=["POST"]),
                Route("/{owner}/{repo}.git/{rest:path}", self._git, methods=["GET", "POST"]),
            ]
        )  # fmt: skip

    def _rate_headers(self) -> dict[str, str]:
        used = len(self.calls)
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(max(0, RATE_LIMIT - used)),
            "X-RateLimit-Used": str(used),
            "X-RateLimit-Reset": str(int(self.clock()) + 3600),
            "X-RateLimit-Resource": "core",
        }

    def _answer(
        self, request: Request, template: str, status: int, body: Any, extra: Any = None
    ) -> JSONResponse:
        method = request.method.lower()
        if github_schema.documents_status(template, method, status):
            errors = github_schema.response_errors(template, method, status, body)
            if errors:
                self.contract_violations.append(f"response {method} {template} {status}: {errors}")
                status, body = 500, {"message": "stand-in response broke the contract"}
        elif status not in (401, 500):
            self.contract_violations.append(f"undocumented {status} for {method} {template}")
        self.calls.append(CallRecord(request.method, template, status, extra))
        headers = self._rate_headers()
        return JSONResponse(body, status_code=status, headers=headers)

    @staticmethod
    def _error(message: str, status: int, errors: list[dict[str, Any]] | None = None) -> Any:
        body: dict[str, Any] = {"message": message, "documentation_url": _DOCS}
        if errors is not None:
            body["errors"] = errors
        return body

    def _scripted_failure(self, request: Request, template: str) -> JSONResponse | None:
        queue = self._failures.get(template)
        if not queue:
            return None
        status, retry_after = queue.popleft()
        self.calls.append(CallRecord(request.method, template, status))
        headers = self._rate_headers()
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        if status == 403 and retry_after is None:
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(self.clock()) + 1)
        message = "You have exceeded a secondary rate limit." if status in (403, 429) else "Error"
        return JSONResponse(self._error(message, status), status_code=status, headers=headers)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not credential:
            return False
        return self._token_valid(credential)

    def _token_valid(self, credential: str) -> bool:
        if self.personal_token is not None and secrets.compare_digest(
            credential, self.personal_token
        ):
            return True
        token = self._tokens.get(credential)
        return token is not None and not self.revoked and token.expires_at > self.clock()

    async def _json_body(self, request: Request, template: str) -> tuple[Any, list[str]]:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return None, ["the body is not JSON"]
        errors = github_schema.request_errors(template, request.method.lower(), body)
        if errors:
            self.contract_violations.append(f"request {request.method} {template}: {errors}")
        return body, errors

    async def _token(self, request: Request) -> Response:
        if failure := self._scripted_failure(request, TOKEN_PATH):
            return failure
        header = request.headers.get("authorization", "")
        scheme, _, assertion = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or self.app_public_key is None:
                raise jwt.InvalidTokenError("no app JWT")
            claims = jwt.decode(
                assertion, self.app_public_key, algorithms=["RS256"], options={"verify_aud": False}
            )
            if str(claims.get("iss")) != str(self.app_id):
                raise jwt.InvalidTokenError("wrong issuer")
        except jwt.InvalidTokenError:
            body = self._error("A JSON web token could not be decoded", 401)
            return self._answer(request, TOKEN_PATH, 401, body)
        installation_id = request.path_params["installation_id"]
        if self.revoked or installation_id != self.installation_id:
            return self._answer(request, TOKEN_PATH, 404, self._error("Not Found", 404))
        token = "ghs_" + secrets.token_hex(18)
        expires = self.clock() + TOKEN_LIFETIME_SECONDS
        self._tokens[token] = _Token(installation_id, expires)
        answer = github_schema.example("installation-token")
        answer.update(token=token, expires_at=_iso(expires))
        answer.pop("repositories", None)
        return self._answer(request, TOKEN_PATH, 201, answer)

    def _guard(self, request: Request, template: str) -> Response | None:
        if failure := self._scripted_failure(request, template):
            return failure
        if not self._authorised(request):
            return self._answer(request, template, 401, self._error("Bad credentials", 401))
        owner, repo = request.path_params["owner"], request.path_params["repo"]
        if (owner, repo) not in self.pulls:
            return self._answer(request, template, 404, self._error("Not Found", 404))
        return None

    def _pull(self, owner: str, repo: str, number: int) -> _Pull:
        for pull in self.pulls.get((owner, repo), []):
            if pull.number == number:
                return pull
        raise KeyError(number)

    def _render(self, pull: _Pull, *, simple: bool = False) -> dict[str, Any]:
        if simple:
            shape: dict[str, Any] = github_schema.example("pull-request-simple-items")[0]
        else:
            shape = github_schema.example("pull-request")
        html = f"{self.base_url}/{pull.owner}/{pull.repo}/pull/{pull.number}"
        api = f"{self.base_url}/repos/{pull.owner}/{pull.repo}/pulls/{pull.number}"
        shape.update(
            id=pull.number * 1000,
            number=pull.number,
            title=pull.title,
            body=pull.body,
            state=pull.state,
            draft=pull.draft,
            url=api,
            html_url=html,
            labels=[
                {**shape["labels"][0], "name": name, "id": i + 1}
                for i, name in enumerate(pull.labels)
            ],
            requested_reviewers=[
                {**shape["user"], "login": login, "id": i + 1}
                for i, login in enumerate(pull.reviewers)
            ],
            requested_teams=[],
            created_at=pull.created_at,
            updated_at=pull.created_at,
            closed_at=None if pull.state == "open" else _iso(self.clock()),
            merged_at=_iso(self.clock()) if pull.merged else None,
        )
        if not simple:
            shape.update(merged=pull.merged, merged_by=None)
        for side, branch in (("head", pull.head), ("base", pull.base)):
            shape[side] = {
                **shape[side],
                "ref": branch,
                "label": f"{pull.owner}:{branch}",
                "sha": self.head_sha(pull.owner, pull.repo, branch) or "0" * 40,
            }
        return shape

    async def _pulls(self, request: Request) -> Response:
        if refusal := self._guard(request, PULLS_PATH):
            return refusal
        owner, repo = request.path_params["owner"], request.path_params["repo"]
        if request.method == "GET":
            state = request.query_params.get("state", "open")
            head = request.query_params.get("head")
            found = [
                self._render(pull, simple=True)
                for pull in self.pulls[(owner, repo)]
                if (state == "all" or pull.state == state)
                and (head is None or head == f"{owner}:{pull.head}")
            ]
            return self._answer(request, PULLS_PATH, 200, found, extra=dict(request.query_params))
        body, errors = await self._json_body(request, PULLS_PATH)
        if errors:
            invalid = self._error("Invalid request.\n\n" + "; ".join(errors), 422)
            return self._answer(request, PULLS_PATH, 422, invalid)
        for side in ("head", "base"):
            if self.head_sha(owner, repo, body[side]) is None:
                failed = self._error(
                    "Validation Failed",
                    422,
                    [{"resource": "PullRequest", "field": side, "code": "invalid"}],
                )
                return self._answer(request, PULLS_PATH, 422, failed, extra=body)
        with self._lock:
            for pull in self.pulls[(owner, repo)]:
                if pull.head == body["head"] and pull.state == "open":
                    message = f"A pull request already exists for {owner}:{pull.head}."
                    failed = self._error(
                        "Validation Failed",
                        422,
                        [{"resource": "PullRequest", "code": "custom", "message": message}],
                    )
                    return self._answer(request, PULLS_PATH, 422, failed, extra=body)
            pull = _Pull(
                number=next(self._numbers),
                owner=owner,
                repo=repo,
                title=body["title"],
                body=body.get("body") or "",
                head=body["head"],
                base=body["base"],
                draft=bool(body.get("draft", False)),
                created_at=_iso(self.clock()),
            )
            self.pulls[(owner, repo)].append(pull)
        return self._answer(request, PULLS_PATH, 201, self._render(pull), extra=body)

    async def _pull_one(self, request: Request) -> Response:
        if refusal := self._guard(request, PULL_PATH):
            return refusal
        params = request.path_params
        try:
            pull = self._pull(params["owner"], params["repo"], params["number"])
        except KeyError:
            return self._answer(request, PULL_PATH, 404, self._error("Not Found", 404))
        if request.method == "PATCH":
            body, errors = await self._json_body(request, PULL_PATH)
            if errors:
                return self._answer(request, PULL_PATH, 422, self._error("Invalid request", 422))
            pull.title = body.get("title", pull.title)
            pull.body = body.get("body", pull.body)
            pull.base = body.get("base", pull.base)
            if body.get("state") in ("open", "closed") and not pull.merged:
                pull.state = body["state"]
            return self._answer(request, PULL_PATH, 200, self._render(pull), extra=body)
        return self._answer(request, PULL_PATH, 200, self._render(pull))

    async def _labels(self, request: Request) -> Response:
        if refusal := self._guard(request, LABELS_PATH):
            return refusal
        params = request.path_params
        body, errors = await self._json_body(request, LABELS_PATH)
        try:
            pull = self._pull(params["owner"], params["repo"], params["number"])
        except KeyError:
            return self._answer(request, LABELS_PATH, 404, self._error("Not Found", 404))
        if errors:
            return self._answer(request, LABELS_PATH, 422, self._error("Invalid request", 422))
        names = body["labels"] if isinstance(body, dict) else body
        for name in names:
            if name not in pull.labels:
                pull.labels.append(name)
        template = github_schema.example("label-items")[0]
        answer = [{**template, "name": name, "id": i + 1} for i, name in enumerate(pull.labels)]
        return self._answer(request, LABELS_PATH, 200, answer, extra=body)

    async def _reviewers(self, request: Request) -> Response:
        if refusal := self._guard(request, REVIEWERS_PATH):
            return refusal
        params = request.path_params
        body, errors = await self._json_body(request, REVIEWERS_PATH)
        try:
            pull = self._pull(params["owner"], params["repo"], params["number"])
        except KeyError:
            return self._answer(request, REVIEWERS_PATH, 404, self._error("Not Found", 404))
        if errors:
            return self._answer(request, REVIEWERS_PATH, 422, self._error("Invalid", 422))
        for login in body.get("reviewers", []):
            if login not in pull.reviewers:
                pull.reviewers.append(login)
        return self._answer(request, REVIEWERS_PATH, 201, self._render(pull, simple=True))

    # -- git smart HTTP --------------------------------------------------------------------

    def _git_credential_ok(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            _user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return self._token_valid(password)

    async def _git(self, request: Request) -> Response:
        owner, repo = request.path_params["owner"], request.path_params["repo"]
        if not self.repository_path(owner, repo).is_dir():
            return Response("Repository not found.\n", status_code=404)
        if not self._git_credential_ok(request):
            self.git_auth_refusals += 1
            return Response(
                "Authentication required\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
            )
        self.git_auth_uses += 1
        body = await request.body()
        env = {
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{owner}/{repo}.git/{request.path_params['rest']}",
            "QUERY_STRING": request.url.query,
            "REQUEST_METHOD": request.method,
            "CONTENT_TYPE": request.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "PATH": "/usr/bin:/bin:/usr/local/bin",
        }
        if encoding := request.headers.get("content-encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding
        if protocol := request.headers.get("git-protocol"):
            env["GIT_PROTOCOL"] = protocol
        process = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _err = await process.communicate(body)
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        return Response(payload, status_code=status, headers=headers)

    # -- webhooks --------------------------------------------------------------------------

    def webhook(self, kind: str, number: int, **fields: Any) -> tuple[str, dict[str, Any]]:
        """A webhook payload about pull request ``number`` and its event name (the
        ``X-GitHub-Event``), checked against ``webhooks.json`` (violations recorded).

        ``kind``: ``closed`` (``merged`` bool), ``review`` (``state``, ``body``),
        ``review_comment`` (``body``, ``path``) or ``check_failed`` (``name``,
        ``summary``); every kind takes ``login`` (the sender, default ``octocat``).
        """
        pull_record = next(p for pulls in self.pulls.values() for p in pulls if p.number == number)
        pull = self._render(pull_record)
        for side in ("head", "base"):
            pull[side]["repo"] = {**pull[side]["repo"], "visibility": "public"}
        repository = pull["base"]["repo"]
        sender = {**pull["user"], "login": fields.get("login", "octocat")}
        if kind == "closed":
            pull_record.state, pull_record.merged = "closed", bool(fields.get("merged"))
            pull = {**pull, "state": "closed", "merged": pull_record.merged}
            body = {"action": "closed", "number": number, "pull_request": pull}
            event, name = "pull_request", "pull-request-closed"
        elif kind == "review":
            review = github_schema.example("pull-request-review")
            review.update(state=fields.get("state", "changes_requested"), body=fields.get("body"))
            body = {"action": "submitted", "review": review, "pull_request": pull}
            event, name = "pull_request_review", "pull-request-review-submitted"
        elif kind == "review_comment":
            comment = github_schema.example("pull-request-review-comment")
            comment.update(body=fields.get("body", ""), path=fields.get("path", "README.md"))
            counts = ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
            reactions: dict[str, Any] = dict.fromkeys(counts, 0)
            comment.setdefault("reactions", {**reactions, "total_count": 0, "url": comment["url"]})
            body = {"action": "created", "comment": comment, "pull_request": pull}
            event, name = "pull_request_review_comment", "pull-request-review-comment-created"
        elif kind == "check_failed":
            spec_example = github_schema.webhook_example("check-run-completed")
            run = spec_example["check_run"]
            run.update(name=fields.get("name", "ci"), conclusion="failure")
            run["output"] = {**run["output"], "summary": fields.get("summary", "tests failed")}
            for linked in run["pull_requests"][:1]:
                linked.update(number=number)
                linked["head"] = {
                    **linked["head"],
                    "ref": pull_record.head,
                    "sha": pull["head"]["sha"],
                }
            run["pull_requests"] = run["pull_requests"][:1]
            body = {**spec_example, "check_run": run}
            event, name = "check_run", "check-run-completed"
        else:
            raise ValueError(f"unknown webhook kind {kind!r}")
        body.setdefault("repository", repository)
        body["sender"] = sender
        errors = github_schema.webhook_errors(name, body)
        if errors:
            self.contract_violations.append(f"webhook {name}: {errors[:5]}")
        return event, body

"""What the fake agent CLIs (``fake_claude.py``, ``fake_codex.py``, ``fake_gemini.py``)
share. Standard library only: the fakes run as real executables, under any Python 3.11+.

Each fake's ``main`` starts with :func:`begin` (scenario, state, the call recorded) and
:func:`launch` (grandchild, state saved, scripted early deaths and stderr), then prints its
own events.

Scenario (``FAKE_AGENT_SCENARIO``: a path to a JSON file, or inline JSON)::

    {"session_id": "optional fixed id", "model": "claude-sonnet-4-5",
     "runs": [{...}, {...}]}

``runs[i]`` scripts the i-th invocation in the same worktree (the first run, then each
resume); the last entry repeats. A run may say:

- ``text``: the final agent message; ``edits``: ``[{"path", "content", "append"}]``
  applied in the working directory; ``commit`` (default: true when there are edits) and
  ``commit_message``.
- ``turns`` and ``cost_per_turn`` (Claude): the cost grows turn by turn; the CLI's
  ``--max-turns`` and ``--max-budget-usd`` are honoured as the real one does (stop with
  ``error_max_turns`` / ``error_max_budget_usd``). ``cost_usd`` sets the total instead.
- ``usage``: token counts to report; ``outcome``: ``success`` or an error kind;
  ``errors``: messages for an error outcome.
- ``behaviour``: ``normal``, ``hang`` (stop printing, wait forever), ``hang_ignore_term``
  (the same, ignoring SIGTERM), ``crash`` (print half a line, then die with ``exit_code``),
  ``die_at_start`` (die with ``exit_code`` before the first line, as a CLI killed with its
  daemon the moment it was spawned: no session was ever announced);
  ``grandchild``: also start a child process that ignores SIGTERM and holds stdout.
- ``junk``: lines that are not JSON, printed along the way; ``stderr``: text for stderr.
- ``dump_env``: a path where the process writes its environment as JSON.
- ``delay_seconds``: a pause between lines.
- ``fail``: ``{"stderr": text, "exit_code": 1, "unless_flag": "--flag"}``: print ``text``
  on stderr and exit before the first line (a refusal, an expired login, a usage limit),
  unless ``unless_flag`` is on the command line; ``{epoch+N}`` in the text becomes the Unix
  time N seconds from now (a usage limit's reset time). With ``"after_start": true`` the
  failure comes after the session was announced (a limit hit mid-session); with
  ``"only": "claude"`` (or ``"codex"``) only that CLI fails.

State across invocations (calls, sessions) is kept in ``FAKE_AGENT_STATE`` (a directory), or
in ``FAKE_AGENT_STATE_ROOT/<working directory's name>/`` (one directory per worktree that
outlives the worktree, so a test can count calls after a success removed it), or else in
the working directory's private git dir.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCENARIO_ENV = "FAKE_AGENT_SCENARIO"
STATE_ENV = "FAKE_AGENT_STATE"
STATE_ROOT_ENV = "FAKE_AGENT_STATE_ROOT"


def load_scenario(cwd: Path | None = None) -> dict[str, Any]:
    """The scenario from the environment, or an empty (all defaults) one.

    A scenario with ``tasks`` (``{"<sub-task key>": {scenario}}``) scripts each sub-task
    on its own: the one whose key ends the working directory's name (worktrees are named
    ``<ISSUE>-<key>``) applies, the longest key winning.
    """
    raw = os.environ.get(SCENARIO_ENV, "").strip()
    if not raw:
        return {}
    text = raw if raw.startswith("{") else Path(raw).read_text(encoding="utf-8")
    scenario = json.loads(text)
    if not isinstance(scenario, dict):
        raise SystemExit(f"{SCENARIO_ENV} must be a JSON object")
    tasks = scenario.get("tasks")
    if isinstance(tasks, dict) and cwd is not None:
        for key in sorted(tasks, key=len, reverse=True):
            if cwd.name.endswith(key):
                chosen = tasks[key]
                return chosen if isinstance(chosen, dict) else {}
        return {}
    return scenario


def run_for(scenario: dict[str, Any], index: int) -> dict[str, Any]:
    """The script of the ``index``-th invocation (the last one repeats)."""
    runs = scenario.get("runs") or [{}]
    run = runs[min(index, len(runs) - 1)]
    return run if isinstance(run, dict) else {}


def state_path(cwd: Path, name: str) -> Path:
    """Where this fake keeps its state for the worktree at ``cwd``."""
    configured = os.environ.get(STATE_ENV)
    root = os.environ.get(STATE_ROOT_ENV)
    if configured:
        directory = Path(configured)
    elif root:
        directory = Path(root) / cwd.name
    else:
        found = subprocess.run(
            ["git", "rev-parse", "--absolute-git-dir"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        directory = Path(found.stdout.strip()) if found.returncode == 0 else cwd
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def load_state(path: Path) -> dict[str, Any]:
    if path.is_file():
        state = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(state, dict):
            return state
    return {"calls": [], "sessions": {}}


def save_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
    temporary.replace(path)


def emit(event: dict[str, Any], delay: float = 0.0) -> None:
    """Print one JSON line and flush it (as the real CLIs do)."""
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    if delay:
        time.sleep(delay)


def print_junk(run: dict[str, Any]) -> None:
    for line in run.get("junk") or []:
        sys.stdout.write(str(line) + "\n")
    sys.stdout.flush()


def apply_edits(cwd: Path, run: dict[str, Any]) -> list[Path]:
    """Write the run's edits under ``cwd``; return the absolute paths written."""
    written = []
    for edit in run.get("edits") or []:
        target = (cwd / str(edit["path"])).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = "a" if edit.get("append") else "w"
        with target.open(mode, encoding="utf-8") as handle:
            handle.write(str(edit.get("content", "")))
        written.append(target)
    return written


def commit(cwd: Path, run: dict[str, Any]) -> None:
    if not run.get("commit", bool(run.get("edits"))):
        return
    message = str(run.get("commit_message") or "fake agent: apply scripted edits")
    subprocess.run(["git", "add", "-A"], cwd=cwd, check=True, capture_output=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=Fake Agent",
            "-c",
            "user.email=fake-agent@localhost",
            "commit",
            "--allow-empty",
            "-q",
            "-m",
            message,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def dump_env(run: dict[str, Any]) -> None:
    target = run.get("dump_env")
    if target:
        Path(str(target)).write_text(json.dumps(dict(os.environ), indent=1), encoding="utf-8")


def start_grandchild(run: dict[str, Any]) -> int | None:
    """A child that ignores SIGTERM and inherits stdout, like a stray dev server would."""
    if not run.get("grandchild"):
        return None
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(3600)\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    return child.pid


def ignore_sigterm_if_scripted(run: dict[str, Any]) -> None:
    """From the very start, as a CLI that traps SIGTERM and carries on would."""
    if run.get("behaviour") == "hang_ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def die_if_scripted_at_start(run: dict[str, Any]) -> None:
    """Exit before printing anything when the run's behaviour is ``die_at_start``."""
    if run.get("behaviour") == "die_at_start":
        os._exit(int(run.get("exit_code", 137)))


def fail_if_scripted(run: dict[str, Any], argv: list[str], *, started: bool = False) -> None:
    """Exit with the scripted failure text unless its ``unless_flag`` was given
    (``started``: the session was announced; only an ``after_start`` failure fires then)."""
    failure = run.get("fail")
    if not isinstance(failure, dict) or bool(failure.get("after_start")) != started:
        return
    if failure.get("unless_flag") and failure["unless_flag"] in argv:
        return
    if failure.get("only") and str(failure["only"]) not in Path(sys.argv[0]).name:
        return
    text = str(failure.get("stderr") or "scripted failure")
    for found in re.finditer(r"\{epoch\+(\d+)\}", text):
        text = text.replace(found.group(0), str(int(time.time()) + int(found.group(1))))
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
    raise SystemExit(int(failure.get("exit_code", 1)))


def misbehave(run: dict[str, Any]) -> None:
    """Hang or crash when the scenario says so (returns only for ``normal``)."""
    behaviour = run.get("behaviour", "normal")
    if behaviour in ("hang", "hang_ignore_term"):
        while True:
            time.sleep(3600)
    if behaviour == "crash":
        sys.stdout.write('{"type":"assistant","message":{"content":[{"type":"te')
        sys.stdout.flush()
        sys.stderr.write("fatal: the fake agent crashed mid-stream (scripted)\n")
        sys.stderr.flush()
        os._exit(int(run.get("exit_code", 3)))


def now() -> str:
    """An ISO 8601 timestamp, as the CLIs stamp their events."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def new_id() -> str:
    return str(uuid.uuid4())


def record_call(
    state: dict[str, Any], argv: list[str], prompt: str | None, resume: str | None, session: str
) -> None:
    state["calls"].append(
        {
            "argv": argv,
            "prompt": prompt,
            "resume": resume,
            "session_id": session,
            "cwd": os.getcwd(),
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "started_at": time.time(),
        }
    )


DEFAULT_TEXT = "Done: applied the requested change."


def final_text(run: dict[str, Any]) -> str:
    """The run's final agent message (scripted ``text``, else a default)."""
    return str(run.get("text") or DEFAULT_TEXT)


def scripted_errors(run: dict[str, Any]) -> list[str]:
    """The messages of an error outcome (scripted ``errors``, else one default)."""
    return [str(e) for e in run.get("errors") or ["scripted failure"]]


@dataclass
class Invocation:
    """One invocation of a fake CLI: where it runs, its scenario and state, the run scripted
    for it and the session it belongs to."""

    cwd: Path
    scenario: dict[str, Any]
    state_file: Path
    state: dict[str, Any]
    run: dict[str, Any]
    session_id: str

    @property
    def call(self) -> dict[str, Any]:
        """This invocation's record in the state (``calls``' last entry)."""
        record: dict[str, Any] = self.state["calls"][-1]
        return record

    @property
    def session(self) -> dict[str, Any]:
        """The session's totals in the state, kept across invocations."""
        totals: dict[str, Any] = self.state["sessions"][self.session_id]
        return totals

    @property
    def delay(self) -> float:
        return float(self.run.get("delay_seconds", 0.0))


def begin(
    cli: str, argv: list[str], prompt: str | None, resume: str | None, *, unknown_session: str
) -> Invocation | int:
    """Load the scenario and the state of the worktree at the working directory (state file
    ``fake-<cli>-state.json``). A ``resume`` of a session the state does not know prints
    ``unknown_session`` on stderr and gives exit code 1. Otherwise the scripted run (SIGTERM
    ignored from here when scripted), recorded as a call (``[cli, *argv]``) and as one more
    invocation of its session (``resume``, else the scenario's ``session_id``, else new)."""
    cwd = Path.cwd()
    scenario = load_scenario(cwd)
    state_file = state_path(cwd, f"fake-{cli}-state.json")
    state = load_state(state_file)
    if resume is not None and resume not in state["sessions"]:
        sys.stderr.write(unknown_session + "\n")
        return 1
    run = run_for(scenario, len(state["calls"]))
    ignore_sigterm_if_scripted(run)
    session_id = resume or str(scenario.get("session_id") or new_id())
    record_call(state, [cli, *argv], prompt, resume, session_id)
    state["sessions"].setdefault(session_id, {"invocations": 0})["invocations"] += 1
    return Invocation(cwd, scenario, state_file, state, run, session_id)


def launch(invocation: Invocation, argv: list[str], *, scripted_fail: bool = True) -> None:
    """Start the scripted grandchild, save the state, dump the environment, die or (with
    ``scripted_fail``) fail before the first line as scripted, then print the scripted
    ``stderr``."""
    run = invocation.run
    invocation.call["grandchild_pid"] = start_grandchild(run)
    save_state(invocation.state_file, invocation.state)
    dump_env(run)
    die_if_scripted_at_start(run)
    if scripted_fail:
        fail_if_scripted(run, argv)
    if run.get("stderr"):
        sys.stderr.write(str(run["stderr"]) + "\n")
        sys.stderr.flush()

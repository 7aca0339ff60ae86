"""A realistic five-sub-task plan for a tiny demo repository, with the repository itself.

Contract:
- :func:`demo_plan` returns the plan as plain JSON-able data (what a model would pass to
  ``submit_plan``), ready to be scripted into the Anthropic stand-in. Its graph: two
  independent roots (``add-function``, ``multiply-function``), a join on both (``cli``), a
  test sub-task on both roots (``unit-tests``), and a final ``review`` of the two; three
  layers deep. It passes :func:`~edge_worker.orchestration.plan.validate_plan` with the
  default limits.
- :data:`DEMO_REPOSITORY_FILES` is the starting repository (a ``calc`` package without the
  features) and :data:`DEMO_SOLUTIONS` the files that complete each sub-task, so a fake
  agent can do the work for real: every verification command fails on the starting
  repository and passes once the sub-task's solution (and its dependencies') is written.
- :func:`demo_mix_plan` is the same plan as a planner hints it for a hybrid strategy:
  :data:`CLOUD_SUBTASK` asks for the cloud (Codegen), every other sub-task for a local
  agent; with ``scoping=True`` it starts with an independent ``scope`` sub-task of role
  ``scoper`` (no code changes, checked), so the plan has scoper, builder and reviewer work.
- :func:`init_demo_repository` writes the starting files into a directory and makes it a
  git repository with one commit on ``main``.

``python`` in the commands defaults to ``python``; pass ``sys.executable`` when the
interpreter on ``PATH`` is not the one with pytest.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

DEMO_ISSUE_TITLE = "Calculator: add and multiply, on the command line, with tests"
DEMO_ISSUE_DESCRIPTION = """\
The `calc` package should offer `add(a, b)` and `multiply(a, b)` and a command line:
`python -m calc add 2 3` prints `5`. Cover both functions with unit tests.

[repo=demo]
"""

DEMO_REPOSITORY_FILES: dict[str, str] = {
    "README.md": "# calc\n\nA tiny calculator used by the edge-worker demo.\n",
    "calc/__init__.py": '"""A tiny calculator."""\n',
    "tests/__init__.py": "",
    ".gitignore": "__pycache__/\n.pytest_cache/\n",
}

DEMO_SOLUTIONS: dict[str, dict[str, str]] = {
    "add-function": {
        "calc/add.py": '''"""Addition."""


def add(a: float, b: float) -> float:
    """The sum of ``a`` and ``b``."""
    return a + b
''',
    },
    "multiply-function": {
        "calc/multiply.py": '''"""Multiplication."""


def multiply(a: float, b: float) -> float:
    """The product of ``a`` and ``b``."""
    return a * b
''',
    },
    "cli": {
        "calc/__main__.py": '''"""Command line: ``python -m calc add 2 3`` prints ``5``."""

import sys

from calc.add import add
from calc.multiply import multiply

OPERATIONS = {"add": add, "multiply": multiply}


def number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in OPERATIONS:
        print("usage: python -m calc {add,multiply} A B", file=sys.stderr)
        return 2
    try:
        a, b = number(argv[1]), number(argv[2])
    except ValueError:
        print("A and B must be numbers", file=sys.stderr)
        return 2
    print(OPERATIONS[argv[0]](a, b))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
''',
    },
    "unit-tests": {
        "tests/test_calc.py": """from calc.add import add
from calc.multiply import multiply


def test_add() -> None:
    assert add(2, 3) == 5
    assert add(-1, 1) == 0
    assert add(0.5, 0.25) == 0.75


def test_multiply() -> None:
    assert multiply(4, 5) == 20
    assert multiply(-2, 3) == -6
    assert multiply(7, 0) == 0
""",
    },
    "review": {},
}


def demo_plan(python: str = "python") -> dict[str, Any]:
    """The demo plan as JSON-able data; ``python`` is the interpreter in its commands."""
    py = shlex.quote(python)
    return {
        "summary": (
            "Add add() and multiply() as two independent modules, then a command line "
            "that uses both and unit tests for both, in parallel; finish with a review of "
            "the whole change against the issue."
        ),
        "subtasks": [
            {
                "key": "add-function",
                "title": "Add calc.add(a, b)",
                "description": (
                    "Objective: provide `add(a, b)` returning the sum of two numbers.\n\n"
                    "Context: the repository is a small Python package `calc` (see "
                    "`calc/__init__.py`). Put the function in a new module `calc/add.py`; "
                    "do not edit `calc/__init__.py` (another sub-task works in parallel on "
                    "`calc/multiply.py`). Use type hints and a one-line docstring.\n\n"
                    "Acceptance criteria:\n"
                    "- `from calc.add import add` works\n"
                    "- `add(2, 3) == 5`, `add(-1, 1) == 0`, `add(0.5, 0.25) == 0.75`\n"
                    "- no other file changes"
                ),
                "role": "builder",
                "executor": "any",
                "depends_on": [],
                "verification": [
                    {
                        "command": f'{py} -c "from calc.add import add; '
                        'assert add(2, 3) == 5 and add(-1, 1) == 0 and add(0.5, 0.25) == 0.75"',
                        "expect_exit": 0,
                    }
                ],
            },
            {
                "key": "multiply-function",
                "title": "Add calc.multiply(a, b)",
                "description": (
                    "Objective: provide `multiply(a, b)` returning the product of two "
                    "numbers.\n\n"
                    "Context: the repository is a small Python package `calc`. Put the "
                    "function in a new module `calc/multiply.py`; do not edit "
                    "`calc/__init__.py` (another sub-task works in parallel on "
                    "`calc/add.py`). Use type hints and a one-line docstring.\n\n"
                    "Acceptance criteria:\n"
                    "- `from calc.multiply import multiply` works\n"
                    "- `multiply(4, 5) == 20`, `multiply(-2, 3) == -6`, `multiply(7, 0) == 0`\n"
                    "- no other file changes"
                ),
                "role": "builder",
                "executor": "any",
                "depends_on": [],
                "verification": [
                    {
                        "command": f'{py} -c "from calc.multiply import multiply; '
                        'assert multiply(4, 5) == 20 and multiply(-2, 3) == -6"',
                        "expect_exit": 0,
                    }
                ],
            },
            {
                "key": "cli",
                "title": "Command line: python -m calc add|multiply A B",
                "description": (
                    "Objective: a command line so that `python -m calc add 2 3` prints `5` "
                    "and `python -m calc multiply 4 5` prints `20`.\n\n"
                    "Context: `calc.add.add` and `calc.multiply.multiply` exist (earlier "
                    "sub-tasks). Write `calc/__main__.py`: parse the operation and two "
                    "numbers from `sys.argv`, print the result (whole numbers without a "
                    "decimal point), exit 0. On an unknown operation, a wrong number of "
                    "arguments or a non-number, print a usage line to stderr and exit 2.\n\n"
                    "Acceptance criteria:\n"
                    "- `python -m calc add 2 3` prints exactly `5`\n"
                    "- `python -m calc multiply 4 5` prints exactly `20`\n"
                    "- `python -m calc divide 1 2` exits with status 2"
                ),
                "role": "builder",
                "executor": "any",
                "depends_on": ["add-function", "multiply-function"],
                "verification": [
                    {"command": f'test "$({py} -m calc add 2 3)" = 5', "expect_exit": 0},
                    {"command": f'test "$({py} -m calc multiply 4 5)" = 20', "expect_exit": 0},
                    {"command": f"{py} -m calc divide 1 2", "expect_exit": 2},
                ],
            },
            {
                "key": "unit-tests",
                "title": "Unit tests for add and multiply",
                "description": (
                    "Objective: pytest tests that pin down `add` and `multiply`.\n\n"
                    "Context: `calc/add.py` and `calc/multiply.py` exist (earlier "
                    "sub-tasks). Write `tests/test_calc.py` with one test per function, "
                    "covering positive, negative, zero and (for add) fractional inputs. Run "
                    "with `python -m pytest -q` from the repository root; do not change the "
                    "functions.\n\n"
                    "Acceptance criteria:\n"
                    "- `python -m pytest -q tests/test_calc.py` passes\n"
                    "- at least one test for each function"
                ),
                "role": "builder",
                "executor": "any",
                "depends_on": ["add-function", "multiply-function"],
                "verification": [
                    {"command": f"{py} -m pytest -q tests/test_calc.py", "expect_exit": 0}
                ],
            },
            {
                "key": "review",
                "title": "Review the calculator change against the issue",
                "description": (
                    "Objective: confirm the combined change does what the issue asks and "
                    "nothing else.\n\n"
                    "Context: four earlier sub-tasks added `calc/add.py`, "
                    "`calc/multiply.py`, `calc/__main__.py` and `tests/test_calc.py`. Read "
                    "them together; check naming, docstrings, error handling of the command "
                    "line and that the tests would catch a broken function. Do not rewrite "
                    "working code; report findings in your summary.\n\n"
                    "Acceptance criteria:\n"
                    "- the whole test suite passes\n"
                    "- the command line works as the issue describes"
                ),
                "role": "reviewer",
                "executor": "any",
                "depends_on": ["cli", "unit-tests"],
                "verification": [
                    {"command": f"{py} -m pytest -q", "expect_exit": 0},
                    {"command": f'test "$({py} -m calc add 2 3)" = 5', "expect_exit": 0},
                ],
            },
        ],
    }


CLOUD_SUBTASK = "add-function"
SCOPE_SUBTASK: dict[str, Any] = {
    "key": "scope",
    "title": "Scope the calculator change",
    "description": (
        "Objective: read the issue and the repository and say which files each part of the "
        "change touches, so the builders and the reviewer share one picture.\n\n"
        "Context: the repository is a small Python package `calc` with an empty "
        "`calc/__init__.py`. Do not change any file; report the scope in your summary.\n\n"
        "Acceptance criteria:\n"
        "- the summary names the modules for add, multiply, the command line and the tests"
    ),
    "role": "scoper",
    "executor": "local",
    "depends_on": [],
}


def demo_mix_plan(python: str = "python", *, scoping: bool = False) -> dict[str, Any]:
    """:func:`demo_plan` with the executor hints of a hybrid plan (see the module contract)."""
    plan = demo_plan(python)
    for subtask in plan["subtasks"]:
        subtask["executor"] = "cloud" if subtask["key"] == CLOUD_SUBTASK else "local"
    if scoping:
        # A sub-task passes only on checks that ran: the scope leaves the package as it was.
        checks = [f'{shlex.quote(python)} -c "import calc"', "git diff --quiet HEAD"]
        verification = [{"command": command, "expect_exit": 0} for command in checks]
        plan["subtasks"].insert(0, {**SCOPE_SUBTASK, "verification": verification})
    return plan


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write ``files`` (relative path to text) under ``root``, creating directories."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


_IDENTITY = ["-c", "user.name=edge-worker demo", "-c", "user.email=demo@edge-worker.invalid"]


def _git(*argv: str, cwd: Path) -> None:
    subprocess.run(["git", *argv], cwd=cwd, check=True, capture_output=True)


def add_origin(repository: Path, origin: Path) -> Path:
    """Give ``repository`` a bare clone at ``origin`` as its remote ``origin``."""
    _git("clone", "-q", "--bare", str(repository), str(origin), cwd=repository.parent)
    _git("remote", "add", "origin", str(origin), cwd=repository)
    return origin


def push_branch(origin: Path, branch: str, files: dict[str, str], *, base: str = "main") -> None:
    """Push ``branch`` to ``origin``: ``base`` plus one commit writing ``files``."""
    with tempfile.TemporaryDirectory(prefix="edge-worker-push-") as scratch:
        work = Path(scratch)
        _git("clone", "-q", "--branch", base, str(origin), str(work), cwd=origin.parent)
        _git("checkout", "-q", "-b", branch, cwd=work)
        write_files(work, files)
        _git("add", "-A", cwd=work)
        _git(*_IDENTITY, "commit", "-q", "--allow-empty", "-m", f"{branch}: the work", cwd=work)
        _git("push", "-q", "origin", branch, cwd=work)


def init_demo_repository(root: Path, *, branch: str = "main") -> Path:
    """Create the starting demo repository at ``root`` (one commit on ``branch``)."""
    root.mkdir(parents=True, exist_ok=True)
    write_files(root, DEMO_REPOSITORY_FILES)
    _git("init", "-q", "-b", branch, cwd=root)
    _git("add", "-A", cwd=root)
    _git(*_IDENTITY, "commit", "-q", "-m", "calc: empty package", cwd=root)
    return root

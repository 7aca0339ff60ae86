"""The console's routes over its ASGI app, on a real database filled through the project's
storage and ledger APIs: access, the pages' contents, agreement with ``edge-worker costs``
and ``edge-worker report``, and the change feed behind the live updates."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from starlette.testclient import TestClient

from edge_worker import cli
from edge_worker.console import access, audit, controls, queries
from edge_worker.console.changes import ChangeFeed
from edge_worker.console.context import Console
from edge_worker.console.dbos_reader import plan_from_steps
from edge_worker.console.routes import build_console, console_routes
from edge_worker.costs.cli import run_costs_command
from edge_worker.orchestration.follow_ups import Named, named_subtasks
from edge_worker.reporting.daily_report_data import run_report_command
from edge_worker.settings import ConsoleSettings, Settings, load_settings
from edge_worker.storage import activity_log, issue_links, work
from tests.support.console import (
    TOKEN,
    VIEWER_TOKEN,
    Spend,
    console_settings,
    open_engine,
    record,
    seed,
    start_issue,
)
from tests.support.pg import scratch_database

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAGES = ["/", "/issue/ENG-1", "/history", "/costs", "/report", "/report.md", "/events"]


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield console_settings(tmp_path, per_day_usd=10.0, per_issue_usd=5.0)
        return
    url: str = request.getfixturevalue("postgres_url")
    with scratch_database(url) as scratch:
        plain = console_settings(tmp_path, per_day_usd=10.0, per_issue_usd=5.0)
        yield plain.model_copy(update={"database_url": scratch})


@pytest.fixture
def engine(settings: Settings) -> Iterator[sa.Engine]:
    engine = open_engine(settings)
    seed(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    tokens = access.Tokens(TOKEN, VIEWER_TOKEN)
    with TestClient(build_console(settings, lambda: engine, tokens)) as test_client:
        yield test_client


def cells(html: str, row_attr: str) -> list[str]:
    """The text of each cell of the table row carrying ``row_attr``."""
    match = re.search(rf"<tr {re.escape(row_attr)}[^>]*>(.*?)</tr>", html, re.S)
    assert match, f"no row {row_attr}"
    raw = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in raw]


def test_the_console_is_off_without_a_token(settings: Settings) -> None:
    assert settings.console.token is None
    assert console_routes(settings, lambda: None) == []
    short = settings.model_copy(update={"console": ConsoleSettings(token=SecretStr("short"))})
    with pytest.raises(access.ConsoleConfigError, match="at least 16"):
        console_routes(short, lambda: None)


def test_tokens_are_read_from_files_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    from_file = ConsoleSettings(token=SecretStr("ignored-when-a-file-is-set"), token_file=path)
    assert access.load_tokens(from_file) == access.Tokens(TOKEN)
    with pytest.raises(access.ConsoleConfigError, match="cannot read"):
        access.load_tokens(ConsoleSettings(token_file=tmp_path / "missing"))
    with pytest.raises(access.ConsoleConfigError, match="needs"):
        access.load_tokens(ConsoleSettings(viewer_token=SecretStr(VIEWER_TOKEN)))
    with pytest.raises(access.ConsoleConfigError, match="differ"):
        access.load_tokens(ConsoleSettings(token=SecretStr(TOKEN), viewer_token=SecretStr(TOKEN)))


def test_tokens_come_from_the_environment_like_every_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(access.TOKEN_ENV, TOKEN)
    monkeypatch.setenv(access.VIEWER_TOKEN_ENV, VIEWER_TOKEN)
    tokens = access.load_tokens(load_settings().console)
    assert tokens == access.Tokens(TOKEN, VIEWER_TOKEN)


def test_roles_come_from_the_token_and_cookies_carry_no_token() -> None:
    tokens = access.Tokens(TOKEN, VIEWER_TOKEN)
    assert tokens.role_of_bearer(f"Bearer {TOKEN}") == "operator"
    assert tokens.role_of_bearer(f"bearer {VIEWER_TOKEN}") == "viewer"
    assert tokens.role_of_bearer("Bearer nope") is None
    operator, viewer = tokens.cookie_for("operator"), tokens.cookie_for("viewer")
    assert TOKEN not in operator and VIEWER_TOKEN not in viewer
    assert tokens.role_of_cookie(operator) == "operator"
    assert tokens.role_of_cookie(viewer) == "viewer"
    forged = "operator." + viewer.split(".", 1)[1]  # a viewer's cookie relabelled
    assert tokens.role_of_cookie(forged) is None
    assert access.Tokens("x" * 20).role_of_cookie(operator) is None  # token changed


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_every_page_refuses_without_the_token_and_logs_it(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in PAGES:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    # a token in the URL is never accepted
    assert client.get(f"/?token={TOKEN}").status_code == 401
    assert client.post("/login", content="token=wrong").status_code == 401
    logged = capsys.readouterr()
    assert "console access refused" in logged.out + logged.err
    assert TOKEN not in logged.out + logged.err


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_the_login_form_sets_a_session_cookie_without_the_token(client: TestClient) -> None:
    answer = client.post(
        "/login",
        content=f"token={TOKEN}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    cookie = answer.cookies[access.COOKIE_NAME]
    assert TOKEN not in cookie
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert "samesite=strict" in answer.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200  # the client keeps the cookie
    client.post("/logout")
    assert client.get("/").status_code == 401


def test_now_lists_the_issues_in_flight_with_what_each_waits_on(client: TestClient) -> None:
    html = client.get("/", headers=AUTH).text
    eng1 = cells(html, 'data-issue="ENG-1"')
    assert eng1[1:4] == ["working", "1/3", "claude-code: 1, codegen: 1, codex: 1"]
    assert eng1[4].startswith("$1.13 + 1 unpriced run of $5.00")
    assert eng1[6] == "executor: codegen, codex"
    assert cells(html, 'data-issue="ENG-2"')[6] == "a human answer"
    assert cells(html, 'data-issue="OPS-3"')[6] == "the planner"
    assert "ENG-100" not in html  # finished work is History's
    day = re.search(r'id="day-budget">.*?class="spent">(.*?)</span> of (\$[\d.]+)', html, re.S)
    assert day and day.groups() == ("$1.76 + 1 unpriced run", "$10.00")
    assert "ew-local-runs" in html


def test_history_filters_by_state_team_executor_and_day(client: TestClient) -> None:
    def shown(query: str) -> list[str]:
        answer = client.get("/history" + query, headers=AUTH)
        assert answer.status_code == 200
        return sorted(re.findall(r'<tr data-issue="([^"]+)"', answer.text))

    assert shown("") == ["ENG-100", "ENG-102", "OPS-101", "OPS-103"]
    assert shown("?state=failed") == ["OPS-101"]
    assert shown("?team=ENG") == ["ENG-100", "ENG-102"]
    assert shown("?executor=codex") == []
    assert shown("?executor=codegen&team=OPS") == ["OPS-101", "OPS-103"]
    assert shown("?day=today") == ["ENG-100", "ENG-102", "OPS-101", "OPS-103"]
    assert shown("?day=yesterday") == []
    assert client.get("/history?state=bogus", headers=AUTH).status_code == 400
    assert client.get("/history?day=someday", headers=AUTH).status_code == 400


@pytest.mark.parametrize("day", [None, "3-days-ago"])
def test_costs_page_shows_the_numbers_of_edge_worker_costs(
    client: TestClient, settings: Settings, day: str | None
) -> None:
    chosen = None
    if day is not None:
        chosen = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    out = io.StringIO()
    assert run_costs_command(settings, day=chosen, issue=None, as_json=True, out=out) == 0
    expected = json.loads(out.getvalue())
    html = client.get("/costs" + (f"?day={chosen}" if chosen else ""), headers=AUTH).text
    total = re.search(r'id="costs-total">(.*?)<', html)
    assert total and total.group(1) == expected["total"]["display"]
    per_issue = dict(
        re.findall(
            r'<tr data-name="([^"]+)"><td>[^<]*</td><td class="num money">([^<]*)</td>',
            html.split('id="per-issue"')[1].split("</table>")[0],
        )
    )
    assert per_issue == {i["issue_identifier"]: i["display"] for i in expected["issues"]}
    assert html.count('class="bar"') == 30
    if day is None:
        assert "ENG-1</td><td>cli</td><td>codegen" in html  # the unpriced part, named
        executors = html.split('id="per-executor"')[1].split("</table>")[0]
        assert (
            'data-name="codegen"><td>codegen</td><td class="num money">$0.30 + 1 unpriced run<'
            in executors
        )


def test_report_page_markdown_and_command_say_the_same(
    client: TestClient, settings: Settings
) -> None:
    out = io.StringIO()
    assert run_report_command(settings, day="today", out=out) == 0
    markdown = out.getvalue()
    assert client.get("/report.md?day=today", headers=AUTH).text == markdown
    html = client.get("/report?day=today", headers=AUTH).text
    items = re.findall(r"<li>(.*?)</li>", html)
    assert items and all(f"- {item}" in markdown for item in items)
    assert "codegen sub-tasks failed 2 of 4 times" in markdown


def test_unknown_issue_and_bad_day_are_clear_errors(client: TestClient) -> None:
    missing = client.get("/issue/NOPE-9", headers=AUTH)
    assert missing.status_code == 404 and "No issue NOPE-9" in missing.text
    assert client.get("/costs?day=31.02.", headers=AUTH).status_code == 400
    assert client.get("/report?day=soon", headers=AUTH).status_code == 400


def test_a_fragment_is_the_live_part_only(client: TestClient) -> None:
    page = client.get("/", headers=AUTH).text
    fragment = client.get("/?fragment=1", headers=AUTH).text
    assert "<html" in page and "<html" not in fragment
    assert 'id="in-flight"' in fragment


def test_issue_page_before_planning_says_there_is_no_plan_yet(client: TestClient) -> None:
    html = client.get("/issue/OPS-3", headers=AUTH).text
    assert "No plan yet." in html and "planning" in html
    assert 'id="stop-form"' in html  # an operator may stop it


def test_plan_comes_from_every_planning_round() -> None:
    steps = [
        {"function_name": "x.now_step", "output": 1.0},
        {
            "function_name": "edge_worker.orchestration.steps.plan_step",
            "output": {"plan": {"subtasks": [{"key": "a", "title": "A", "role": "code"}]}},
        },
        {"function_name": "edge_worker.orchestration.steps.plan_step", "output": {"error": "x"}},
        {
            "function_name": "edge_worker.orchestration.steps.plan_step",
            "output": {
                "plan": {
                    "subtasks": [
                        {"key": "a", "title": "A again", "role": "code"},
                        {"key": "b", "title": "B", "role": "test", "depends_on": ["a"]},
                    ]
                }
            },
        },
    ]
    plan = plan_from_steps(steps)
    assert [(t.key, t.title, t.depends_on) for t in plan] == [("a", "A", ()), ("b", "B", ("a",))]


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
async def test_change_feed_wakes_listeners_and_resumes_after_a_reconnect(
    engine: sa.Engine,
) -> None:
    def token() -> str:
        with engine.connect() as conn:
            return queries.change_token(conn)

    feed = ChangeFeed(token, interval=0.05)
    first_listener = feed.listen(None)
    first = await asyncio.wait_for(anext(first_listener), 10)

    def change() -> None:
        with engine.begin() as conn:
            work.set_state(conn, "i-eng-2", "issue-i-eng-2-wf", "working")

    await asyncio.to_thread(change)
    second = await asyncio.wait_for(anext(first_listener), 10)
    assert second != first
    await first_listener.aclose()
    # a page that reconnects having seen the latest change gets nothing until the next one
    again = feed.listen(second)
    pending = asyncio.ensure_future(anext(again))
    await asyncio.sleep(0.3)  # a negative check: nothing may arrive within a few polls
    assert not pending.done()
    await asyncio.to_thread(start_issue, engine, "i-new", "ENG-77", "planning")
    assert await asyncio.wait_for(pending, 10) not in (first, second)
    await again.aclose()
    # a page that reconnects having missed a change hears of it at once
    stale = feed.listen(first)
    assert await asyncio.wait_for(anext(stale), 10) != first
    await stale.aclose()
    await feed.close()


VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def stop_form(client: TestClient, ref: str) -> dict[str, str]:
    """The stop form's hidden fields, as the Issue page renders them for an operator."""
    html = client.get(f"/issue/{ref}", headers=AUTH).text
    form = html.split('id="stop-form"')[1].split("</form>")[0]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form))
    assert set(fields) == {"csrf", "nonce"}, html
    return fields


def stop(client: TestClient, ref: str, fields: dict[str, str], **headers: str) -> Any:
    body = "&".join(f"{k}={v}" for k, v in fields.items())
    return client.post(
        f"/issue/{ref}/stop", content=body, headers=FORM | headers, follow_redirects=False
    )


def audit_rows(engine: sa.Engine) -> list[tuple[str, str, str, str | None]]:
    return [(e.actor.split("@")[0], e.target, e.outcome, e.reason) for e in audit.recent(engine)]


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_controls_are_refused_audited_and_change_nothing(
    client: TestClient, engine: sa.Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = stop_form(client, "ENG-1")
    viewer_page = client.get("/issue/ENG-1", headers=VIEWER).text
    assert "Stop this issue" not in viewer_page and fields["csrf"] not in viewer_page
    cases = [
        (stop(client, "ENG-1", fields, **VIEWER), 403, controls.READ_ONLY),
        (stop(client, "ENG-1", {"nonce": fields["nonce"]}, **AUTH), 403, controls.BAD_CSRF),
        (
            stop(client, "ENG-1", fields, Origin="https://evil.example", **AUTH),
            403,
            controls.BAD_CSRF,
        ),
        (stop(client, "NOPE-1", fields, **AUTH), 404, "No issue NOPE-1"),
        (stop(client, "ENG-100", fields, **AUTH), 409, "ENG-100 is not in flight (it is done)"),
        (stop(client, "ENG-1", {"csrf": fields["csrf"]}, **AUTH), 400, controls.NO_NONCE),
    ]
    for answer, status, text in cases:
        assert answer.status_code == status and text in answer.text
    assert stop(client, "ENG-1", fields).status_code == 401  # no credentials at all
    with engine.connect() as conn:
        assert queries.one_issue(conn, "ENG-1").state == "working"  # type: ignore[union-attr]
    rows = audit_rows(engine)
    assert [r[2] for r in rows] == ["refused"] * len(cases)
    assert rows[-1][:2] == ("viewer", "ENG-1") and rows[-1][3] == controls.READ_ONLY
    assert "console control refused" in capsys.readouterr().out
    page = client.get("/", headers=AUTH).text
    assert page.count('data-outcome="refused"') == len(cases)


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_stop_that_cannot_be_delivered_says_so_and_its_form_cannot_be_replayed(
    client: TestClient, engine: sa.Engine
) -> None:
    fields = stop_form(client, "ENG-1")
    # no DBOS tables in this database: the message cannot be stored. The page's origin is
    # https behind a TLS proxy while the daemon is asked over http: the same site.
    first = stop(client, "ENG-1", fields, Origin="https://testserver", **AUTH)
    assert first.status_code == 503 and "could not be delivered" in first.text
    replay = stop(client, "ENG-1", fields, **AUTH)
    assert replay.status_code == 409 and controls.REPLAYED in replay.text
    assert [(r[2], r[3]) for r in audit_rows(engine)] == [
        ("refused", controls.REPLAYED),
        ("failed", first.text),
    ]


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_an_answer_needs_text_and_the_same_checks_as_a_stop(
    client: TestClient, engine: sa.Engine
) -> None:
    fields = stop_form(client, "ENG-2")
    html = client.get("/issue/ENG-2", headers=AUTH).text
    assert "Answer the pending question" in html  # ENG-2 waits for a human

    def answer(text: str, **headers: str) -> Any:
        body = f"csrf={fields['csrf']}&nonce={fields['nonce']}&text={text}"
        return client.post(
            "/issue/ENG-2/answer", content=body, headers=FORM | headers, follow_redirects=False
        )

    assert answer("continue", **VIEWER).status_code == 403
    assert answer("", **AUTH).text == controls.EMPTY_ANSWER
    assert answer("x" * (controls.MAX_ANSWER + 1), **AUTH).text == controls.LONG_ANSWER
    assert controls.answer_message(queries_one(engine, "ENG-2"), {"text": " continue "}) == {
        "kind": "follow_up",
        "issue_id": "i-eng-2",
        "issue_identifier": "ENG-2",
        "actor_name": controls.ACTOR_NAME,
        "text": "continue",
    }
    assert [(r[0], r[2]) for r in audit_rows(engine)] == [
        ("operator", "refused"),
        ("operator", "refused"),
        ("viewer", "refused"),
    ]


def queries_one(engine: sa.Engine, ref: str) -> Any:
    with engine.connect() as conn:
        return queries.one_issue(conn, ref)


def test_the_change_id_moves_with_every_kind_of_write_and_only_then(
    settings: Settings, engine: sa.Engine
) -> None:
    console = Console(settings, lambda: engine, access.Tokens(TOKEN))
    first = console.change_id()
    assert console.change_id() == first
    start_issue(engine, "i-new", "ENG-77", "planning")  # a new work item
    second = console.change_id()
    assert second != first
    with engine.begin() as conn:  # a sub-task moves
        work.track_subtask(conn, "i-eng-1", "cli", "issue-i-eng-1-wf-cli-1", "passed", "codegen")
    third = console.change_id()
    assert third != second
    record(engine, Spend("i-eng-1", "ENG-1", "late-run", "codex", "gpt-5", "0.5"))
    assert console.change_id() not in (first, second, third)


def test_report_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGE_WORKER_STATE_DIR", str(tmp_path / "nothing-yet"))
    assert cli.main(["report", "--day", "2026-01-02"]) == 0
    assert capsys.readouterr().out.startswith("# Daily report for 2026-01-02")
    assert not (tmp_path / "nothing-yet").exists()  # reading creates nothing
    assert cli.main(["report", "--day", "someday"]) == 2
    assert "--day must be a date" in capsys.readouterr().err


def test_serve_refuses_a_short_console_token_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGE_WORKER_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("EDGE_WORKER_LINEAR__WEBHOOK_SECRET", "secret")
    monkeypatch.setenv("EDGE_WORKER_LINEAR__API_KEY", "lin_api_x")
    monkeypatch.setenv("EDGE_WORKER_LINEAR__AGENT_USER_ID", "agent")
    monkeypatch.setenv("EDGE_WORKER_ANTHROPIC__API_KEY", "sk-ant-x")
    monkeypatch.setenv(access.TOKEN_ENV, "too-short")
    assert cli.main(["serve", "--port", "9"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "at least 16 characters" in err and "too-short" not in err


def test_retry_names_the_sub_task_the_way_a_reply_on_linear_does(engine: sa.Engine) -> None:
    issue = queries_one(engine, "ENG-1")
    message = controls.retry_message(issue, {"key": "cli"})
    assert isinstance(message, dict) and message["kind"] == "follow_up"
    names = [Named("cli", "ENG-9"), Named("docs", None)]
    assert named_subtasks(message["text"], names) == ["cli"]
    for bad in ("", "x`y", "a b", "-lead"):
        assert controls.retry_message(issue, {"key": bad}) == controls.NO_KEY


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_retry_without_a_key_is_refused(client: TestClient, engine: sa.Engine) -> None:
    fields = stop_form(client, "ENG-1")
    answer = client.post(
        "/issue/ENG-1/retry",
        content=f"csrf={fields['csrf']}&nonce=n-1",
        headers=FORM | AUTH,
        follow_redirects=False,
    )
    assert answer.status_code == 400 and answer.text == controls.NO_KEY
    assert audit_rows(engine)[0][1:3] == ("ENG-1", "refused")


def test_issue_page_shows_what_was_said_on_linear_in_order_and_links_to_linear(
    client: TestClient, engine: sa.Engine
) -> None:
    at = datetime.now(UTC)
    said = [
        ("a-1", "thought", "Reading <ENG-1> and its repository."),
        ("a-2", "elicitation", "Which repository?"),
        ("c-1", "comment", "Plan posted."),
        ("a-3", "response", "All three sub-tasks passed."),
    ]
    for n, (entry_id, kind, body) in enumerate(said):
        activity_log.record(
            engine,
            issue_id="i-eng-1",
            kind=kind,
            body=body,
            entry_id=entry_id,
            at=at + timedelta(seconds=n),
        )
    activity_log.record(engine, issue_id="i-eng-1", kind="response", body="again", entry_id="a-3")
    activity_log.record(
        engine, issue_id="i-eng-1", kind="action", body="Edit x.py", run_workflow_id="wf-x"
    )
    activity_log.record(engine, issue_id="i-eng-2", kind="thought", body="Not ENG-1's.")
    with engine.begin() as conn:
        issue_links.remember(conn, "i-eng-1", "https://linear.app/acme/issue/ENG-old")
        issue_links.remember(conn, "i-eng-1", "https://linear.app/acme/issue/ENG-1/parse")
    html = client.get("/issue/ENG-1", headers=AUTH).text
    log = re.search(r'<ol class="log" id="activity-log">(.*?)</ol>', html, re.S)
    assert log, html
    lines = re.findall(
        r'<li data-kind="(\w+)"><time>([\d:]+)</time>.*?class="body">(.*?)</span>', log.group(1)
    )
    assert [(kind, body) for kind, _, body in lines] == [
        ("thought", "Reading &lt;ENG-1&gt; and its repository."),
        ("elicitation", "Which repository?"),
        ("comment", "Plan posted."),
        ("response", "All three sub-tasks passed."),  # a repeated entry is kept once
    ]
    assert lines[0][1] == at.strftime("%H:%M:%S")
    assert "Edit x.py" not in log.group(1)  # a run's progress goes under its run
    assert "Not ENG-1" not in html
    assert 'id="issue-linear" href="https://linear.app/acme/issue/ENG-1/parse"' in html
    assert "Nothing said on Linear yet." in client.get("/issue/OPS-3", headers=AUTH).text


def test_history_links_each_issue_to_linear_when_known(
    client: TestClient, engine: sa.Engine
) -> None:
    with engine.begin() as conn:
        issue_links.remember(conn, "i-fin-0", "https://linear.app/acme/issue/ENG-100")
    html = client.get("/history", headers=AUTH).text
    row = re.search(r'<tr data-issue="ENG-100".*?</tr>', html, re.S)
    assert row and 'href="https://linear.app/acme/issue/ENG-100"' in row.group(0)
    assert cells(html, 'data-issue="OPS-101"')[-1] == "-"  # never read from Linear


def test_the_change_id_moves_when_a_line_is_said_or_streamed(
    settings: Settings, engine: sa.Engine
) -> None:
    console = Console(settings, lambda: engine, access.Tokens(TOKEN))
    first = console.change_id()
    activity_log.record(engine, issue_id="i-eng-1", kind="thought", body="x", entry_id="t-1")
    second = console.change_id()
    assert second != first
    activity_log.record(engine, issue_id="i-eng-1", kind="thought", body="x", entry_id="t-1")
    assert console.change_id() == second  # a repeat records nothing
    activity_log.record(engine, issue_id="i-eng-1", kind="action", body="y", run_workflow_id="r")
    third = console.change_id()
    assert third != second
    activity_log.record(
        engine, issue_id="i-eng-1", kind="comment", body="v2", entry_id="t-1", replace=True
    )
    assert console.change_id() != third  # an edited comment shows its latest text
    with engine.connect() as conn:
        bodies = [line.body for line in activity_log.for_issue(conn, "i-eng-1")]
    assert bodies == ["y", "v2"]

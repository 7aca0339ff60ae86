"""The console in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``)
against the real daemon working on the stand-ins: sign in, watch an issue appear and its
sub-tasks finish on *Now* without reloading, see the plan graph on *Issue*, and compare
*Costs* with ``edge-worker costs --json``. Screenshots of every page are written to
``tests/artifacts/console/`` (or ``$EDGE_WORKER_CONSOLE_SCREENSHOTS``) for a person to look
at. Outside CI the test skips when the browser is not installed; in CI it must run
(``.ci/setup-console.sh`` installs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from edge_worker.sandbox.world import SandboxWorld, solved_runs
from tests.support.console import TOKEN
from tests.support.e2e import E2E, running, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = Path(
    os.environ.get("EDGE_WORKER_CONSOLE_SCREENSHOTS")
    or Path(__file__).parent / "artifacts" / "console"
)
STOPPED_TEXT = "Stopped by an operator (console)."
FOLLOW_UP_TEXT = "Follow-up from an operator (console)"
MISSING = (
    "needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver): "
    "apt-get install -y chromium chromium-driver, or run .ci/setup-console.sh"
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail(f"the console browser test must run in CI: {MISSING}")
        pytest.skip(MISSING)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    with SandboxWorld(tmp_path / "world") as started:
        for subtask in started.plan["subtasks"]:  # slow enough to watch each one run
            runs = solved_runs(subtask["key"])
            for run in runs["runs"]:
                run["delay_seconds"] = 0.4
            started.tasks[subtask["key"]] = runs
        yield started


def shoot(driver: WebDriver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    bottom = "const r = document.querySelector('main').getBoundingClientRect(); return r.bottom;"
    for _ in range(2):  # the page's height settles once the window is that tall
        height = driver.execute_script(bottom)
        driver.set_window_size(1280, max(700, min(int(height) + 160, 4000)))
    driver.save_screenshot(str(path))
    return path


# The live part of a page is replaced whenever the database changes, so elements are read
# in one script call each (a WebElement held across a refresh would be stale).
def text_of(driver: WebDriver, css: str) -> str:
    script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';"
    return str(driver.execute_script(script, css))


def attr(driver: WebDriver, css: str, name: str) -> str | None:
    script = (
        "const e = document.querySelector(arguments[0]);"
        "return e ? e.getAttribute(arguments[1]) : null;"
    )
    value = driver.execute_script(script, css, name)
    return None if value is None else str(value)


def attrs(driver: WebDriver, css: str, name: str) -> list[str]:
    script = (
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(e => e.getAttribute(arguments[1]) || '');"
    )
    return [str(v) for v in driver.execute_script(script, css, name)]


def texts(driver: WebDriver, css: str) -> list[str]:
    script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText);"
    return [str(v) for v in driver.execute_script(script, css)]


def sign_in(driver: WebDriver, base: str) -> None:
    driver.get(base + "/console/")
    assert "Sign in" in driver.title  # refused without the token: the login form
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form[action='/console/login'] button").click()
    wait_until(lambda: driver.find_elements(By.ID, "day-budget"), 15)


def costs_json(e2e: E2E) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "edge_worker.cli", "costs", "--json"],
        env=e2e.daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout))


def test_console_follows_a_demo_run_live_in_chromium(
    world: SandboxWorld, tmp_path: Path, browser: WebDriver
) -> None:
    issue_id = world.new_issue()
    budgets = {"EDGE_WORKER_BUDGET__PER_DAY_USD": "4", "EDGE_WORKER_BUDGET__PER_ISSUE_USD": "3"}
    with running(world, tmp_path / "state", EDGE_WORKER_CONSOLE__TOKEN=TOKEN, **budgets) as e2e:
        base = e2e.daemon.url
        sign_in(browser, base)
        wait_until(lambda: "live-status on" in (attr(browser, "#live-status", "class") or ""), 15)
        browser.execute_script("window.__sameDocument = true;")
        assert "Nothing in flight." in text_of(browser, "#live")

        e2e.assign(issue_id)
        identifier = world.linear.store.find_issue(issue_id).identifier
        row = f'tr[data-issue="{identifier}"]'
        # the issue appears, then its sub-tasks pass one by one, without a reload
        wait_until(lambda: attr(browser, row, "data-state"), 30)
        wait_until(lambda: int(attr(browser, f"{row} td[data-done]", "data-done") or 0) >= 1, 60)
        assert browser.execute_script("return window.__sameDocument === true")
        assert "claude-code" in text_of(browser, row)  # the executor mix
        assert " of $3.00" in text_of(browser, row)  # spend against the issue budget
        assert "of $4.00 spent today" in text_of(browser, "#day-budget")
        assert attr(browser, "#day-budget .bar-fill", "style")
        shoot(browser, "now-during-run")

        browser.get(f"{base}/console/issue/{identifier}")
        wait_until(lambda: attrs(browser, "svg.plan-graph a.node", "data-key"), 15)
        keys = [s["key"] for s in world.plan["subtasks"]]
        assert sorted(attrs(browser, "svg.plan-graph a.node", "data-key")) == sorted(keys)
        edges = attrs(browser, "svg.plan-graph path.edge", "d")
        assert len(edges) == sum(len(s.get("depends_on", [])) for s in world.plan["subtasks"])
        shoot(browser, "issue-during-run")
        browser.execute_script("window.__sameDocument = true;")

        assert e2e.wait_end(issue_id) == "done", e2e.log()[-3000:]
        # the open Issue page turns every node green by itself
        wait_until(
            lambda: (
                set(attrs(browser, "svg.plan-graph a.node", "data-status")) == {"passed"}
                and "done" in text_of(browser, "h1")
            ),
            30,
        )
        assert browser.execute_script("return window.__sameDocument === true")
        runs = texts(browser, "table.runs tr[data-run]")
        assert len(runs) >= len(keys)
        assert "claude-code" in runs[0] and "passed" in runs[0]
        passed = attrs(browser, "ul.checks li", "data-passed")
        assert passed and set(passed) == {"true"}  # every check's evidence, observed
        # what was said on Linear, with the agents' progress under each run
        said = attrs(browser, "#activity-log li", "data-kind")
        assert said and said[-1] == "comment", said  # user mode: the report comment
        assert attrs(browser, "ol.log[data-run] li", "data-kind")
        store = world.linear.store
        url = store.issue_url(store.find_issue(issue_id))
        assert attr(browser, "#issue-linear", "href") == url
        browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        shoot(browser, "issue-done")

        browser.get(f"{base}/console/")
        wait_until(lambda: "Nothing in flight." in text_of(browser, "#live"), 15)
        assert "Linear requests left" in text_of(browser, "#linear-limit")  # the stand-in's
        shoot(browser, "now-after-run")

        expected = costs_json(e2e)
        browser.get(f"{base}/console/costs")
        assert text_of(browser, "#costs-total") == expected["total"]["display"]
        names = attrs(browser, "#per-issue tr", "data-name")
        shown = dict(zip(names, texts(browser, "#per-issue tr td.money"), strict=True))
        assert shown == {i["issue_identifier"]: i["display"] for i in expected["issues"]}
        shoot(browser, "costs")

        browser.get(f"{base}/console/history")
        assert browser.find_elements(By.CSS_SELECTOR, f'#history tr[data-issue="{identifier}"]')
        assert attr(browser, f'#history tr[data-issue="{identifier}"] a.linear-link', "href") == url
        shoot(browser, "history")

        browser.get(f"{base}/console/report?day=today")
        assert "1 issue ended (1 done)" in text_of(browser, "#report-summary")
        shoot(browser, "daily-report")

        # stop a second issue from its page: its agents hang, so it stays in flight
        # (and one sub-task fails at once, for the page to run it again)
        for key in keys:
            world.tasks[key] = {"runs": [{"behaviour": "hang"}]}
        world.tasks["add-function"] = {"runs": [{"text": "I could not do it.", "cost_usd": 0.03}]}
        world.scenario_path()
        second = world.new_issue()
        e2e.assign(second)
        wait_until(lambda: e2e.work_state(second) == "working", 30)
        other = world.linear.store.find_issue(second).identifier
        browser.get(f"{base}/console/issue/{other}")
        retry = '.retry-form[data-key="add-function"]'
        wait_until(lambda: attr(browser, retry, "data-key"), 60)
        calls = len(e2e.agent_calls(other, "add-function"))
        shoot(browser, "issue-before-retry")
        browser.execute_script("document.querySelector(arguments[0]).submit();", retry)
        wait_until(lambda: len(e2e.agent_calls(other, "add-function")) > calls, 30)
        runs_of_add = "#task-add-function tr[data-run]"
        wait_until(lambda: len(attrs(browser, runs_of_add, "data-run")) == 2, 30)
        wait_until(lambda: attr(browser, "#stop-form button", "class"), 15)
        shoot(browser, "issue-before-stop")
        # a follow-up from the page reaches the orchestration as a reply on Linear would
        browser.execute_script(
            "const form = document.getElementById('answer-form');"
            "form.querySelector('textarea').value = arguments[0];"
            "form.submit();",
            "Please keep the public API unchanged.",
        )
        wait_until(lambda: attr(browser, '#audit tr[data-outcome="done"]', "data-outcome"), 15)
        wait_until(lambda: attr(browser, "#stop-form button", "class"), 15)
        browser.execute_script(
            "window.confirm = () => true;"  # the page asks before stopping
            "document.querySelector('#stop-form button').click();"
        )
        assert e2e.wait_end(second) == "stopped", e2e.log()[-3000:]
        wait_until(lambda: STOPPED_TEXT in e2e.report(second), 30)
        assert FOLLOW_UP_TEXT in e2e.report(second)
        wait_until(lambda: attr(browser, '#audit tr[data-outcome="done"]', "data-outcome"), 15)
        assert "operator@127.0.0.1" in text_of(browser, "#audit")
        assert sorted(texts(browser, '#audit tr[data-outcome="done"] td:nth-child(3)')) == [
            "answer",
            "retry",
            "stop",
        ]
        wait_until(lambda: "stopped" in text_of(browser, "h1"), 15)
        shoot(browser, "issue-stopped")

        # the daemon restarts under an open page: the stream reconnects by itself and the
        # page still follows the database
        browser.get(f"{base}/console/history")
        wait_until(lambda: "live-status on" in (attr(browser, "#live-status", "class") or ""), 15)
        browser.execute_script("window.__sameDocument = true;")
        e2e.restart()
        for key in keys:
            world.tasks[key] = solved_runs(key)
        world.scenario_path()
        third = world.new_issue()
        e2e.assign(third)
        assert e2e.wait_end(third) == "done", e2e.log()[-3000:]
        last = world.linear.store.find_issue(third).identifier
        wait_until(lambda: attr(browser, f'#history tr[data-issue="{last}"]', "data-state"), 30)
        assert browser.execute_script("return window.__sameDocument === true")
        shoot(browser, "history-after-restart")

"""The ``edge-worker`` command: serve, check, demo, status, costs, report, recover, reinstate.

Each sub-command is a thin shell over a function that does the work, so tests drive the
same code a user runs. Exit codes: 0 success, 2 configuration error, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence

from edge_worker.settings import ConfigError, Settings, load_settings, require_for_serve

EXIT_CONFIG = 2

STATE_DIR_UNWRITABLE = (
    "the state directory {path} is not writable by uid {uid} ({reason}): "
    "make it writable by that user (a container's state volume: by uid 10001)"
)


def _settings_or_exit(for_serve: bool = False) -> Settings:
    try:
        settings = load_settings()
        if for_serve:
            require_for_serve(settings)
        return settings
    except ConfigError as exc:
        print(f"edge-worker: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _writable_state_dir_or_exit(settings: Settings) -> None:
    """Create the state directory if needed and prove it writable, or exit with one line."""
    path = settings.resolved_state_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        message = STATE_DIR_UNWRITABLE.format(path=path, uid=os.getuid(), reason=reason)
        print(f"edge-worker: {message}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    import uvicorn

    from edge_worker.alerts.config import AlertConfigError, channels_from_settings
    from edge_worker.app import build_app
    from edge_worker.console.access import ConsoleConfigError, load_tokens
    from edge_worker.logging import configure_logging
    from edge_worker.mcp.config import McpConfigError
    from edge_worker.server import DrainingServer

    settings = _settings_or_exit(for_serve=True)
    _writable_state_dir_or_exit(settings)
    try:
        load_tokens(settings.console)  # the console's tokens, checked before anything starts
        settings.mcp.bearer_token()  # and the MCP endpoint's
    except (ConsoleConfigError, McpConfigError) as exc:
        print(f"edge-worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        channels_from_settings(settings.alerts)  # alert channels, checked before the start
    except AlertConfigError as exc:
        print(f"edge-worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_format, settings.log_level)
    config = uvicorn.Config(
        build_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_seconds),
        lifespan="on",
    )
    server = DrainingServer(config, drain_seconds=settings.drain_seconds)
    server.run()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the configuration and print it with secrets masked."""
    settings = _settings_or_exit()
    problems = []
    try:
        require_for_serve(settings)
    except ConfigError as exc:
        problems.append(str(exc))
    dumped = settings.model_dump(mode="json")
    dumped["database_url"] = settings.resolved_database_url
    print(json.dumps(dumped, indent=2, sort_keys=True))
    if problems:
        print(f"edge-worker: not ready to serve: {'; '.join(problems)}", file=sys.stderr)
        return EXIT_CONFIG
    print("configuration OK", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the daemon end to end on local stand-ins and embedded defaults."""
    from edge_worker.demo import run_demo

    return run_demo(keep=args.keep, user_mode=args.user_mode, agents=args.agents)


def _demo_agents(text: str) -> list[str]:
    from edge_worker.demo import parse_agents

    try:
        return parse_agents(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_costs(args: argparse.Namespace) -> int:
    """Print the cost ledger for a day and/or an issue."""
    from edge_worker.costs.cli import run_costs_command

    settings = _settings_or_exit()
    return run_costs_command(
        settings, day=args.day, issue=args.issue, as_json=args.json, out=sys.stdout
    )


def cmd_report(args: argparse.Namespace) -> int:
    """Print the daily report of a day as markdown."""
    from edge_worker.reporting.daily_report_data import run_report_command

    return run_report_command(_settings_or_exit(), day=args.day, out=sys.stdout)


def cmd_status(args: argparse.Namespace) -> int:
    """Print the issues in progress and recently finished."""
    from edge_worker.status import run_status_command

    return run_status_command(
        _settings_or_exit(), as_json=args.json, out=sys.stdout, err=sys.stderr
    )


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve edge-worker's MCP tools on stdio (for a client that spawns the command)."""
    from edge_worker.mcp.stdio import run_stdio

    return run_stdio(_settings_or_exit())


def cmd_reinstate(args: argparse.Namespace) -> int:
    """After the Linear app was installed again: lift the refusal, requeue refused work."""
    from edge_worker.storage import access
    from edge_worker.storage.db import create_engine_for, create_tables

    engine = create_engine_for(_settings_or_exit().resolved_database_url)
    try:
        create_tables(engine)
        with engine.begin() as conn:
            revoked = access.revocation(conn)
            requeued = access.reinstate(conn)
    finally:
        engine.dispose()
    if revoked is None and not requeued:
        print("the Linear app is not revoked; nothing to do")
        return 0
    print(f"reinstated: {requeued} refused trigger(s) back in the outbox")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """Ask a running daemon to take over a dead executor's unfinished workflows."""
    import httpx

    try:
        response = httpx.post(
            args.url.rstrip("/") + "/admin/recover",
            json={"executor_id": args.executor_id},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        print(f"edge-worker: cannot reach the daemon at {args.url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(
            f"edge-worker: recover refused ({response.status_code}): {response.text}",
            file=sys.stderr,
        )
        return 1
    body = response.json()
    print(
        f"recovered {len(body['workflows'])} workflow(s) of {args.executor_id} "
        f"onto {body['executor_id']}"
    )
    for workflow_id in body["workflows"]:
        print(f"  {workflow_id}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-worker",
        description="Assign a Linear issue to an agent; get back verified, costed work.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the daemon (webhook intake and workflows)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8787, help="port to bind (default 8787)")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check", help="validate the configuration; print it, secrets masked")
    check.set_defaults(func=cmd_check)

    costs = sub.add_parser("costs", help="what was spent, per issue, sub-task and model")
    costs.add_argument("--day", help="YYYY-MM-DD, today or yesterday (default: today)")
    costs.add_argument("--issue", help="an issue id or identifier (e.g. ENG-12)")
    costs.add_argument("--json", action="store_true", help="print JSON for scripts")
    costs.set_defaults(func=cmd_costs)

    report = sub.add_parser("report", help="the daily report of a day, as markdown")
    report.add_argument("--day", help="YYYY-MM-DD, today or yesterday (default: yesterday)")
    report.set_defaults(func=cmd_report)

    status = sub.add_parser("status", help="issues in progress and recently finished")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(func=cmd_status)

    mcp = sub.add_parser("mcp", help="serve the MCP tools on stdio (delegate from an MCP client)")
    mcp.set_defaults(func=cmd_mcp)

    reinstate = sub.add_parser(
        "reinstate", help="after reinstalling the Linear app: take work again, refused work too"
    )
    reinstate.set_defaults(func=cmd_reinstate)

    recover = sub.add_parser(
        "recover", help="hand a dead machine's unfinished workflows to a running daemon"
    )
    recover.add_argument("--executor-id", required=True, help="the dead daemon's executor id")
    recover.add_argument(
        "--url", default="http://127.0.0.1:8787", help="a living daemon (default %(default)s)"
    )
    recover.set_defaults(func=cmd_recover)

    demo = sub.add_parser("demo", help="run the whole flow on local stand-ins")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the demo's state directory and, in a terminal, the daemon and its console "
        "up until Ctrl-C",
    )
    demo.add_argument(
        "--user-mode",
        action="store_true",
        help="assign the issue to a bot user (comments) instead of delegating it to the agent",
    )
    demo.add_argument(
        "--agents",
        type=_demo_agents,
        default=[],
        metavar="A,B,C",
        help="local agents (claude, codex, gemini; or codegen) for the scoper, builder and "
        "reviewer roles in turn, e.g. gemini,codex,claude (default: the hybrid-smart "
        "strategy's mix of Codegen and local agents)",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edge-worker`` console script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())

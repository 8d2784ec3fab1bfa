"""Replay issue 9's scenarios 1–3 against two running server processes; PASS/FAIL and the latency of each, exit 0/1.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python scripts/replay_rights.py \\
        --servers http://127.0.0.1:8000 http://127.0.0.1:8001

Run it with the servers' environment (``DATABASE_URL`` or ``SQLITE_PATH``, ``REDIS_URL``, ``REDIS_PREFIX``): rights
are changed through Django's ORM in ``manage.py shell`` on that database, whose signals reach the servers through
that Redis. Scenario 3 needs both sockets in public mode (``WEBSOCKETS_REST_AUTH=public
WEBSOCKETS_GRAPHQL_AUTH=public``). It logs in as the demo admin and editor, creates ``finance@example.com`` and rows
of its own for the run, and puts back what it changed (README "Rights changes, replayed").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the scenarios are the live tests' (tests/live/rights_replay.py)

from tests.live.harness import LiveDatabase, redis_ping  # noqa: E402
from tests.live.rights import Remote, Shell, http  # noqa: E402
from tests.live.rights_replay import (  # noqa: E402
    COMBINATIONS,
    Stage,
    finance_user,
    scenario_group_removed,
    scenario_public_role,
    shared_reread,
)

Scenario = Callable[[Stage], dict[str, float]]


def scenario_shared_reread(stage: Stage) -> dict[str, float]:
    measured: dict[str, float] = {}
    with finance_user(stage.shell):
        for placement, first in COMBINATIONS:
            where = "one process" if placement[0] == placement[1] else "two processes"
            for name, seconds in shared_reread(stage, placement, first).items():
                measured[f"{where}, {first}: {name}"] = seconds
    return measured


SCENARIOS: list[tuple[str, Scenario, str]] = [
    (
        "a shared re-read shows each subscriber only what it may read (4 subscribe orders and placements)",
        scenario_shared_reread,
        "write to frame",
    ),
    (
        "a user removed from its group loses its REST and GraphQL subscriptions on both processes",
        scenario_group_removed,
        "commit to frame",
    ),
    (
        "the Public group's lost permission ends public REST and GraphQL subscriptions on both processes",
        scenario_public_role,
        "commit to frame",
    ),
]


def environment_problem(servers: list[str]) -> str | None:
    """Why the replay cannot work here, or ``None``."""
    redis = os.environ.get("REDIS_URL")
    if not redis:
        return "REDIS_URL is not set: give the servers' REDIS_URL (and REDIS_PREFIX, if they have one)."
    if not redis_ping(redis):
        return f"No Redis answers at {redis}."
    for url in servers:
        try:
            status, _ = http(Remote(url), "GET", "/server/info")
        except (OSError, ValueError) as error:  # ValueError: an answer that is not JSON (not one of our servers)
            return f"{url}/server/info does not answer as a server of this project: {error}"
        if status != 200:
            return f"{url}/server/info answered {status}"
    return None


def connect(servers: list[str]) -> Stage:
    """The stage: both servers, the shell on this environment's database and Redis (as ``make run`` reads them)."""
    database = {name: os.environ[name] for name in ("DATABASE_URL", "SQLITE_PATH") if name in os.environ}
    shell = Shell(LiveDatabase(database), {})
    a, b = (Remote(url) for url in servers)
    stage = Stage.connect((a, b), shell)
    nodes = []
    for server in stage.servers:
        _, body = http(server, "GET", "/server/info", token=stage.admin_token)
        nodes.append(body["data"]["events"]["node"])
    assert nodes[0] != nodes[1], f"both URLs reach the same server process ({nodes[0]}): give two processes"
    return stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", nargs=2, required=True, metavar="URL", help="base URLs of two server processes")
    args = parser.parse_args(argv)
    servers = [url.rstrip("/") for url in args.servers]
    problem = environment_problem(servers)
    if problem is None:
        try:
            stage = connect(servers)
        except (AssertionError, RuntimeError, OSError) as error:
            problem = str(error)
    if problem is not None:
        print(f"cannot replay: {problem}", file=sys.stderr)
        return 2
    failed = False
    for number, (title, scenario, measure) in enumerate(SCENARIOS, start=1):
        started = time.monotonic()
        try:
            measured = scenario(stage)
        except Exception as error:  # a failure of the scenario, or of what it needs: reported, then the next one
            failed = True
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(f"scenario {number} FAIL: {title}: {reason}", flush=True)
            print(f"  {type(error).__name__}: {error}", file=sys.stderr)
            continue
        worst = max(measured.values()) * 1000
        print(f"scenario {number} PASS: {title}: {measure} at most {worst:.0f} ms", flush=True)
        for name, seconds in measured.items():
            print(f"  {name}: {seconds * 1000:.0f} ms", file=sys.stderr)
        print(f"  ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

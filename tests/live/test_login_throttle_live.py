"""Login throttling across processes: two daphne processes whose cache is the same Redis count one account's failed
logins together, with the default limits (the harness raises them for the other live tests)."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.live.client import JsonSocket
from tests.live.conftest import EDITOR, StartServer
from tests.live.harness import LOGIN_THROTTLE_LIVE_LIMITS, DaphneProcess
from tests.support import wait_until

# Empty means unset: the servers run with realtime_auth.conf's defaults (10 failures per account per 15 minutes),
# not the harness's raised limits (LOGIN_THROTTLE_LIVE_LIMITS).
DEFAULT_LIMITS = {name: "" for name in (*LOGIN_THROTTLE_LIVE_LIMITS, "LOGIN_THROTTLE_WINDOW")}
ACCOUNT_FAILURES = 10
WINDOW = 900
MARGIN = 60  # seconds this test may take, on a loaded machine (it took 26 s on the shared 2 cores)
THROTTLED = re.compile(r"Too many login attempts, retry after ([0-9]+)ms\.")


@pytest.fixture(scope="module")
def pair(start_server: StartServer) -> tuple[DaphneProcess, DaphneProcess]:
    return start_server(**DEFAULT_LIMITS), start_server(**DEFAULT_LIMITS, WEBSOCKETS_REST_AUTH="public")


def login(server: DaphneProcess, email: str, password: str) -> tuple[int, Any, str | None]:
    body = json.dumps({"email": email, "password": password}).encode()
    request = urllib.request.Request(
        server.http + "/auth/login", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers.get("Retry-After")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers.get("Retry-After")


def retry_after_ms(body: Any) -> int:
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "REQUESTS_EXCEEDED"}, body
    match = THROTTLED.fullmatch(error["message"])
    assert match, body
    return int(match.group(1))


# Ten real password hashes (PBKDF2, settings.base) and two server starts: minutes on a loaded 2-core machine.
@pytest.mark.timeout(300)
def test_failures_spread_over_two_processes_lock_the_account_on_both(
    pair: tuple[DaphneProcess, DaphneProcess],
) -> None:
    a, b = pair
    # Windows are aligned to the epoch (every process agrees on them): the attempts must not straddle the end of one,
    # or the later ones would count in a fresh window. At most MARGIN seconds in one run out of WINDOW / MARGIN.
    wait_until(lambda: WINDOW - time.time() % WINDOW > MARGIN, MARGIN + 5, "the window never turned")
    spellings = [EDITOR[0], EDITOR[0].upper(), f" {EDITOR[0]}"]  # one account, however it is typed
    failures = [login((a, b)[n % 2], spellings[n % 3], f"wrong-{n}") for n in range(ACCOUNT_FAILURES)]
    assert [status for status, _, _ in failures] == [401] * ACCOUNT_FAILURES

    status, body, retry_after = login(a, EDITOR[0], "wrong-again")
    assert status == 429, body
    ms = retry_after_ms(body)
    assert 0 < ms <= WINDOW * 1000 and retry_after == str(math.ceil(ms / 1000))
    # The right password, on the other process: refused too, until the window ends.
    status, body, retry_after = login(b, *EDITOR)
    assert status == 429 and 0 < retry_after_ms(body) <= ms and retry_after is not None

    # The sockets count in the same place: B's REST socket (public mode) answers REQUESTS_EXCEEDED and stays open.
    with JsonSocket(b.ws_url()) as ws:
        reply = ws.request({"type": "auth", "email": EDITOR[0], "password": EDITOR[1], "uid": "t"})
        assert list(reply) == ["type", "status", "error", "uid"] and reply["uid"] == "t", reply
        assert (reply["status"], reply["error"]["code"]) == ("error", "REQUESTS_EXCEEDED")
        assert 0 < int(THROTTLED.fullmatch(reply["error"]["message"]).group(1)) <= ms  # type: ignore[union-attr]
        assert ws.request({"type": "ping", "uid": 1}) == {"type": "pong", "uid": 1}

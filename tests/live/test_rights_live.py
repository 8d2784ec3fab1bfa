"""Rights changes reach open REST and GraphQL subscriptions on every process within a second (issue 9), and a shared
re-read shows each subscriber only its own fields, with real daphne processes.

Sockets are open on both processes, the rights change is committed by a separate ``manage.py shell`` (same database,
same Redis channel layer), and the admin writes over HTTP. Subscriptions the new rights cannot read end with the
contract's error at most ``BOUND`` (1 s) after the commit; the others go on, narrowed or widened to the new rights,
and the first event read under them also comes within ``BOUND``. A GraphQL subscription selects only fields readable
when it starts (PROTOCOL §8): narrowed, a selected field comes as ``null``; widened, a new subscription selecting the
field is accepted (and its first event comes) within ``BOUND``, while the open one goes on as it was. The scenarios
shared with scripts/replay_rights.py live in tests/live/rights_replay.py; the last test runs that script against
these two processes. How long each frame took is printed too (``[rights]`` lines).
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.live.conftest import StartServer
from tests.live.harness import ROOT, DaphneProcess, LiveDatabase, RedisServer, server_env
from tests.live.rights import (
    GRAPHQL_FIELDS,
    TIMEOUT,
    Arrival,
    Frame,
    Scene,
    Shell,
    Sockets,
    Sub,
    TimedSocket,
    Writer,
    any_event,
    assert_within,
    equals,
    graphql_updates,
    join,
    settle,
    subscribe,
    wait_for,
)
from tests.live.rights_replay import (
    COMBINATIONS,
    Stage,
    finance_user,
    rights_change_ends,
    scenario_group_removed,
    scenario_public_role,
    shared_reread,
)

PASSWORD = "rights-password"


@pytest.fixture(scope="module")
def servers(start_server: StartServer) -> tuple[DaphneProcess, DaphneProcess]:
    """Two processes, REST and GraphQL sockets in public mode (users log in with an ``auth`` message, or
    ``connection_init`` credentials; the public role's scenario needs sockets without them on both)."""
    public = {"WEBSOCKETS_REST_AUTH": "public", "WEBSOCKETS_GRAPHQL_AUTH": "public"}
    # start_server gives one process per set of overrides: a variable nothing reads makes the second.
    return start_server(**public), start_server(**public, LIKHA_TEST_PROCESS="B")


@pytest.fixture(scope="module")
def shell(servers: tuple[DaphneProcess, DaphneProcess], live_db: LiveDatabase, redis_server: RedisServer) -> Shell:
    return Shell(live_db, {"REDIS_URL": redis_server.url, "REDIS_PREFIX": servers[0].env["REDIS_PREFIX"]})


@pytest.fixture
def stage(servers: tuple[DaphneProcess, DaphneProcess], shell: Shell) -> Stage:
    return Stage.connect(servers, shell)


@pytest.fixture
def tag() -> str:
    """Names this test's users, group and rows: the database is shared by every live test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    with Sockets() as opened:
        yield opened


@pytest.fixture
def figures(capsys: pytest.CaptureFixture[str]) -> Figures:
    return Figures(capsys)


class Figures:
    """Prints (past pytest's capture) how long after the rights change's commit (or a write) a frame arrived."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def record(
        self, trigger: str, measured: dict[str, float], what: str = "error frame", since: str = "the commit"
    ) -> None:
        with self.capsys.disabled():
            for name, seconds in measured.items():
                print(f"\n[rights] {trigger}: {what} on {name} {seconds * 1000:.0f} ms after {since}")


# -- subscriptions the new rights cannot read end, on both processes, within a second ----------------------------


def test_a_user_removed_from_a_group_loses_its_subscriptions_on_every_socket(
    stage: Stage, shell: Shell, tag: str, figures: Figures
) -> None:
    """The user's side of the relation (``user.groups.remove``): issue 9's scenario 2, with a user of its own."""
    user = (f"user-{tag}@example.com", PASSWORD)
    shell.create_user(*user, groups=("Editors",), perms=("view_product",))  # products stay readable without Editors
    figures.record("user removed from a group", scenario_group_removed(stage, user))


OWN_GROUP = "own"  # the test's own group, which holds view_customer
TRIGGERS = [
    pytest.param(
        ("Editors",), False, "Group.objects.get(name='Editors').user_set.remove(user)", id="group-side-removal"
    ),
    pytest.param((OWN_GROUP,), False, "group.delete()", id="group-deleted"),
    pytest.param((OWN_GROUP,), False, "group.permissions.remove(perm('view_customer'))", id="group-permission-removed"),
    pytest.param((), True, "user.is_superuser = False\nuser.save()", id="superuser-flag-taken-away"),
]


@pytest.mark.parametrize(("groups", "superuser", "change"), TRIGGERS)
def test_a_rights_change_ends_what_the_user_no_longer_reads_on_both_processes(
    request: pytest.FixtureRequest,
    stage: Stage,
    shell: Shell,
    tag: str,
    figures: Figures,
    groups: tuple[str, ...],
    superuser: bool,
    change: str,
) -> None:
    """The user reads customers through ``groups`` (or as a superuser) and products through a permission of its own;
    ``change`` (with ``user`` and ``group``, its own group, at hand) takes customers away."""
    user, group = (f"user-{tag}@example.com", PASSWORD), f"Rights-{tag}"
    shell.run(f"Group.objects.create(name={group!r}).permissions.set([perm('view_customer')])")
    groups = tuple(group if name == OWN_GROUP else name for name in groups)
    shell.create_user(*user, groups=groups, perms=("view_product",), superuser=superuser)
    code = f"user = User.objects.get(email={user[0]!r})\ngroup = Group.objects.get(name={group!r})\n{change}"
    trigger = request.node.callspec.id
    figures.record(trigger, rights_change_ends(stage, trigger, user, code, visible=superuser))


def test_the_public_group_losing_a_permission_ends_public_subscriptions(stage: Stage, figures: Figures) -> None:
    """Issue 9's scenario 3: public REST and GraphQL sockets on both processes, and their reads afterwards."""
    figures.record("Public group lost view_product", scenario_public_role(stage))


# -- subscriptions the new rights still read are narrowed or widened, within a second ----------------------------


def customer_and_product_subs(scene: Scene, ws: TimedSocket, visible: bool) -> tuple[Sub, Sub]:
    """Subscribe ``ws`` to the scene's customer (all fields) and product (``visible``: the credit limit is readable)."""
    return subscribe(scene, Sub(ws, "c", "customers"), visible), subscribe(scene, Sub(ws, "p", "products"))


def read_with(scene: Scene, sub: Sub, visible: bool) -> Callable[[Frame], bool]:
    """Wanted: an event of ``sub`` read with (or without) the customer's credit limit."""

    def wanted(frame: Frame) -> bool:
        parsed = scene.parse(sub, frame)
        return parsed is not None and parsed[1] == visible

    return wanted


def assert_switched_once(scene: Scene, sub: Sub, visible: bool) -> None:
    """``sub``'s events were read under the old rights, then under the new ones (``visible``), never back."""
    seen = [shown for _, _, shown in scene.events(sub)]
    first = seen.index(visible)
    assert first > 0 and not any(shown == visible for shown in seen[:first]), (sub.name, seen)
    assert all(shown == visible for shown in seen[first:]), (sub.name, seen)


def open_customer_subs(
    stage: Stage, sockets: Sockets, scene: Scene, user: tuple[str, str], visible: bool
) -> tuple[list[Sub], list[Sub], list[TimedSocket]]:
    """REST and GraphQL sockets of ``user`` on both processes, each subscribed to the scene's customer and product;
    the subscriptions have joined the fan-out and every event so far is delivered. (customers, products, REST)."""
    customers, products, rest = [], [], []
    for server in stage.servers:
        where = stage.where(server)
        rest.append(sockets.rest(server, where, user))
        for ws in (rest[-1], sockets.graphql(server, where, user)):
            customer, product = customer_and_product_subs(scene, ws, visible)
            customers.append(customer)
            products.append(product)
    return customers, products, rest


def test_a_user_permission_removed_narrows_what_is_still_readable_and_ends_the_rest(
    stage: Stage, shell: Shell, tag: str, sockets: Sockets, figures: Figures
) -> None:
    user = (f"finance-{tag}@example.com", PASSWORD)
    shell.create_user(*user, groups=("Editors",), perms=("change_customer",))
    scene = Scene.create(stage.servers[1], stage.admin_token, tag)
    customers, products, rest = open_customer_subs(stage, sockets, scene, user, visible=True)
    fields = ("id", "name", "credit_limit")
    named = [subscribe(scene, Sub(ws, "credit", "customers", fields), visible=True) for ws in rest]
    join(scene, customers + products + named)
    settle(scene, products)

    with Writer(scene, "customers"):  # writes follow the change closely: the first narrowed event shows when it held
        committed = shell.commit(
            f"User.objects.get(email={user[0]!r}).user_permissions.remove(perm('change_customer'))"
        )
        ended = wait_for({sub.name: (sub, equals(sub.removed())) for sub in named})
        narrowed = wait_for({sub.name: (sub, read_with(scene, sub, visible=False)) for sub in customers})
    figures.record("user permission removed", assert_within("user permission removed", committed, ended))
    measured = assert_within("user permission removed", committed, narrowed)
    figures.record("user permission removed", measured, "first narrowed event")
    settle(scene, products)  # every write's event has been read
    for sub in customers:
        # The credit limit before the change, never after it: REST leaves it out, a GraphQL subscription that
        # selected it (readable when it started) gets it as null (PROTOCOL §8).
        assert_switched_once(scene, sub, visible=False)
    for sub in named:
        position = sub.ws.log.index(ended[sub.name])
        assert [arrival.frame for arrival in sub.ws.log[position + 1 :] if sub.owns(arrival.frame)] == [], sub.name


def test_a_permission_granted_widens_open_subscriptions(
    stage: Stage, shell: Shell, tag: str, sockets: Sockets, figures: Figures
) -> None:
    """REST subscriptions of ``*`` widen to the credit limit. A GraphQL operation selects only the fields its caller
    may read when it starts (likha_realtime.graphql.readable, PROTOCOL §8): the open ones, which could not select the
    credit limit, go on exactly as they were; a new one on the same socket selects it once the grant has reached
    that socket. Both within ``BOUND`` of the commit, on both processes."""
    user = (f"editor-{tag}@example.com", PASSWORD)
    shell.create_user(*user, groups=("Editors",))
    scene = Scene.create(stage.servers[1], stage.admin_token, tag)
    customers, products, _ = open_customer_subs(stage, sockets, scene, user, visible=False)
    rest = [sub for sub in customers if sub.ws.kind == "rest"]
    graphql = [sub for sub in customers if sub.ws.kind == "graphql"]
    assert [sub.fields for sub in graphql] == [("id", "name")] * 2  # the credit limit was not selectable
    join(scene, customers + products)
    settle(scene, products)

    with Writer(scene, "customers"), ThreadPoolExecutor(len(graphql)) as pool:
        # Each GraphQL socket tries in a thread of its own, from before the commit (refused until the grant reaches
        # it), while this one commits and waits for the REST sockets.
        started = [pool.submit(subscribe_when_readable, scene, sub) for sub in graphql]
        committed = shell.commit(f"User.objects.get(email={user[0]!r}).user_permissions.add(perm('change_customer'))")
        widened = wait_for({sub.name: (sub, read_with(scene, sub, visible=True)) for sub in rest})
        opened = dict(future.result() for future in started)
    measured = assert_within("user permission granted", committed, widened)
    figures.record("user permission granted", measured, "first widened event")
    measured = assert_within("user permission granted", committed, {sub.name: at for sub, at in opened.items()})
    figures.record("user permission granted", measured, "first event of a new GraphQL subscription of the field")
    settle(scene, products)
    # Both GraphQL subscriptions of each socket go on: a write's frame on the open one without the credit limit (not
    # selected), on the new one with it.
    name = scene.write("customers")
    wait_for({sub.name: (sub, equals(scene.event(sub, name, visible=True))) for sub in [*graphql, *opened]})
    for sub in rest:
        assert_switched_once(scene, sub, visible=True)  # not before the change, and once widened, for good
    for sub in graphql:  # as it was: every event exactly without the credit limit
        seen = scene.events(sub)
        assert [shown for _, _, shown in seen] == [False] * len(seen), (sub.name, seen)
    for sub in opened:  # with the credit limit from its first event on
        seen = scene.events(sub)
        assert seen and [shown for _, _, shown in seen] == [True] * len(seen), (sub.name, seen)


def subscribe_when_readable(scene: Scene, running: Sub) -> tuple[Sub, Arrival]:
    """Subscribe ``running``'s socket to the customer selecting its credit limit, again after each event of
    ``running`` (the writer's pace, well under the socket's message rate limit) while validation refuses the field:
    the socket's rights do not hold it yet (the grant reaches each socket on its own), and the refusal is exactly
    that of an unknown field. The accepted subscription and the arrival of its first event, which shows the limit."""
    ws = running.ws
    query = graphql_updates("customers", GRAPHQL_FIELDS["customers"])
    message = "Cannot query field 'credit_limit' on type 'customers'."
    unknown = [{"message": message, "locations": [{"line": 1, "column": query.index("credit_limit") + 1}]}]
    deadline = time.monotonic() + TIMEOUT
    for attempt in itertools.count(1):
        sub = subscribe(scene, Sub(ws, f"widened-{attempt}", "customers"), visible=True)
        assert sub.fields == GRAPHQL_FIELDS["customers"]
        arrival = ws.expect(sub.owns, f"an answer for {sub.name}", deadline - time.monotonic())
        if arrival.frame["type"] != "error":
            assert read_with(scene, sub, visible=True)(arrival.frame), arrival.frame  # checked whole, with the limit
            return sub, arrival
        assert arrival.frame == {"id": sub.id, "type": "error", "payload": unknown}  # validated under the old rights
        ws.expect(any_event(scene, running), f"an event of {running.name}", deadline - time.monotonic())
    raise AssertionError("unreachable")


# -- issue 9's scenario 1: a shared re-read shows each subscriber only what it may read ------------------------


@pytest.mark.parametrize(
    ("placement", "first"),
    COMBINATIONS,
    ids=[
        f"{'same-process' if a == b else 'two-processes'}-{first.replace(' ', '-')}" for (a, b), first in COMBINATIONS
    ],
)
def test_a_shared_reread_shows_each_subscriber_only_its_own_fields(
    stage: Stage, shell: Shell, figures: Figures, placement: tuple[int, int], first: str
) -> None:
    with finance_user(shell):
        measured = shared_reread(stage, placement, first)
        figures.record(f"scenario 1, {first}", measured, "frame", "the admin's write")


# -- the replay script, against these two processes ---------------------------------------------------------------

REPLAY_OUTPUT = [
    "scenario 1 PASS: a shared re-read shows each subscriber only what it may read "
    "(4 subscribe orders and placements): write to frame at most N ms",
    "scenario 2 PASS: a user removed from its group loses its REST and GraphQL subscriptions on both processes: "
    "commit to frame at most N ms",
    "scenario 3 PASS: the Public group's lost permission ends public REST and GraphQL subscriptions on both "
    "processes: commit to frame at most N ms",
]


@pytest.mark.timeout(900)
def test_the_replay_script_passes_against_two_running_processes(
    servers: tuple[DaphneProcess, DaphneProcess], live_db: LiveDatabase, redis_server: RedisServer
) -> None:
    env = server_env(live_db.env, {"REDIS_URL": redis_server.url, "REDIS_PREFIX": servers[0].env["REDIS_PREFIX"]})
    result = subprocess.run(
        [sys.executable, "scripts/replay_rights.py", "--servers", servers[0].http, servers[1].http],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [re.sub(r"\d+ ms", "N ms", line) for line in result.stdout.splitlines()] == REPLAY_OUTPUT, result.stdout

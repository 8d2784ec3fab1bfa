"""Rights changes reach open REST and GraphQL subscriptions on every process (issue 9), with real daphne processes.

Sockets are open on one process, the rights change is committed by a separate ``manage.py shell`` (same database,
same Redis channel layer), and the admin writes over HTTP on the other process. Subscriptions the new rights
cannot read end with the contract's error; the others go on, narrowed or widened to the new rights. How long each
error frame took after the commit is printed (``[rights]`` lines), not asserted.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.live.conftest import ADMIN, StartServer
from tests.live.harness import DaphneProcess, LiveDatabase, RedisServer
from tests.live.rights import (
    GRAPHQL_FIELDS,
    PATIENCE,
    TIMEOUT,
    Arrival,
    Frame,
    Scene,
    Shell,
    Sub,
    TimedSocket,
    assert_refused,
    assert_removed,
    equals,
    graphql_socket,
    graphql_updates,
    join,
    rest_socket,
    settle,
    subscribe,
    wait_for,
)

PASSWORD = "rights-password"


@pytest.fixture(scope="module")
def servers(start_server: StartServer) -> tuple[DaphneProcess, DaphneProcess]:
    """A: every socket in handshake mode (the default); B: the REST and GraphQL sockets in public mode."""
    return start_server(), start_server(WEBSOCKETS_REST_AUTH="public", WEBSOCKETS_GRAPHQL_AUTH="public")


@pytest.fixture(scope="module")
def shell(servers: tuple[DaphneProcess, DaphneProcess], live_db: LiveDatabase, redis_server: RedisServer) -> Shell:
    return Shell(live_db, {"REDIS_URL": redis_server.url, "REDIS_PREFIX": servers[0].env["REDIS_PREFIX"]})


@pytest.fixture
def tag() -> str:
    """Names this test's users, group and rows: the database is shared by every live test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def admin_token(servers: tuple[DaphneProcess, DaphneProcess]) -> str:
    token: str = servers[0].login(*ADMIN)["access_token"]
    return token


class Sockets:
    """The test's sockets, closed at its end."""

    def __init__(self) -> None:
        self.opened: list[TimedSocket] = []

    def rest(self, server: DaphneProcess, where: str, credentials: tuple[str, str] | None) -> TimedSocket:
        self.opened.append(rest_socket(server, where, credentials))
        return self.opened[-1]

    def graphql(self, server: DaphneProcess, where: str, credentials: tuple[str, str] | None) -> TimedSocket:
        self.opened.append(graphql_socket(server, where, credentials))
        return self.opened[-1]


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    opened = Sockets()
    yield opened
    for ws in opened.opened:
        ws.close()


@pytest.fixture
def figures(capsys: pytest.CaptureFixture[str]) -> Figures:
    return Figures(capsys)


class Figures:
    """Prints (past pytest's capture) how long after the rights change's commit a frame arrived."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def record(self, trigger: str, committed: float, arrivals: dict[str, Arrival], what: str = "error frame") -> None:
        with self.capsys.disabled():
            for name, arrival in arrivals.items():
                print(
                    f"\n[rights] {trigger}: {what} on {name} {(arrival.at - committed) * 1000:.0f} ms after the commit"
                )


def customer_and_product_subs(scene: Scene, ws: TimedSocket, visible: bool) -> tuple[Sub, Sub]:
    """Subscribe ``ws`` to the scene's customer (all fields) and product (``visible``: the credit limit is readable)."""
    return subscribe(scene, Sub(ws, "c", "customers"), visible), subscribe(scene, Sub(ws, "p", "products"))


def test_a_user_removed_from_a_group_loses_its_subscriptions_on_every_socket(
    servers: tuple[DaphneProcess, DaphneProcess],
    shell: Shell,
    tag: str,
    admin_token: str,
    sockets: Sockets,
    figures: Figures,
) -> None:
    a, b = servers
    user = (f"user-{tag}@example.com", PASSWORD)
    shell.create_user(*user, groups=("Editors",), perms=("view_product",))  # products stay readable without Editors
    scene = Scene.create(b, admin_token, tag)
    rc, rp = customer_and_product_subs(scene, sockets.rest(a, "A", user), visible=False)
    gc, gp = customer_and_product_subs(scene, sockets.graphql(a, "A", user), visible=False)
    join(scene, [rc, rp, gc, gp])
    settle(scene, [rp, gp])

    committed = shell.commit(f"User.objects.get(email={user[0]!r}).groups.remove(Group.objects.get(name='Editors'))")
    scene.changed = True

    figures.record("user removed from a group", committed, assert_removed(scene, [rc, gc], [rp, gp]))
    assert_refused(rc.ws, "customers")
    assert_refused(gc.ws, "customers")


def test_a_permission_removed_from_a_group_ends_what_its_members_no_longer_read(
    servers: tuple[DaphneProcess, DaphneProcess],
    shell: Shell,
    tag: str,
    admin_token: str,
    sockets: Sockets,
    figures: Figures,
) -> None:
    a, b = servers
    group, user = f"Rights-{tag}", (f"user-{tag}@example.com", PASSWORD)
    shell.run(f"Group.objects.create(name={group!r}).permissions.set([perm('view_customer'), perm('view_product')])")
    shell.create_user(*user, groups=(group,))
    scene = Scene.create(b, admin_token, tag)
    rc, rp = customer_and_product_subs(scene, sockets.rest(a, "A", user), visible=False)
    gc, gp = customer_and_product_subs(scene, sockets.graphql(a, "A", user), visible=False)
    join(scene, [rc, rp, gc, gp])
    settle(scene, [rp, gp])

    committed = shell.commit(f"Group.objects.get(name={group!r}).permissions.remove(perm('view_customer'))")
    scene.changed = True

    figures.record("group permission removed", committed, assert_removed(scene, [rc, gc], [rp, gp]))
    assert_refused(rc.ws, "customers")
    assert_refused(gc.ws, "customers")


def after_change(scene: Scene, sub: Sub, visible: bool) -> tuple[Sub, Callable[[Frame], bool]]:
    """Wanted: an event of ``sub`` for a write made after the change, read with (or without) the credit limit."""

    def wanted(frame: Frame) -> bool:
        parsed = scene.parse(sub, frame)
        return parsed is not None and parsed[0] in scene.after and parsed[1] == visible

    return sub, wanted


def test_a_user_permission_removed_narrows_what_is_still_readable_and_ends_the_rest(
    servers: tuple[DaphneProcess, DaphneProcess],
    shell: Shell,
    tag: str,
    admin_token: str,
    sockets: Sockets,
    figures: Figures,
) -> None:
    a, b = servers
    user = (f"finance-{tag}@example.com", PASSWORD)
    shell.create_user(*user, groups=("Editors",), perms=("change_customer",))
    scene = Scene.create(b, admin_token, tag)
    rest, graphql = sockets.rest(a, "A", user), sockets.graphql(a, "A", user)
    rc, rp = customer_and_product_subs(scene, rest, visible=True)
    named = subscribe(scene, Sub(rest, "credit", "customers", ("id", "name", "credit_limit")), visible=True)
    gc, gp = customer_and_product_subs(scene, graphql, visible=True)
    join(scene, [rc, rp, named, gc, gp])
    settle(scene, [rp, gp])

    committed = shell.commit(f"User.objects.get(email={user[0]!r}).user_permissions.remove(perm('change_customer'))")
    scene.changed = True

    removed = wait_for({named.name: (named, equals(named.removed()))})
    found = wait_for(
        {sub.name: after_change(scene, sub, visible=False) for sub in (rc, gc)}, lambda: scene.write("customers")
    )
    figures.record("user permission removed", committed, removed)
    figures.record("user permission removed", committed, found, "first narrowed event (writes retried)")
    settle(scene, [rp, gp])  # every write's event has been read
    for sub in (rc, gc):
        # Before the change: the credit limit; after it: never, not even once.
        assert [(name, visible) for _, name, visible in scene.events(sub) if visible == (name in scene.after)] == []
    position = named.ws.log.index(removed[named.name])
    assert [arrival.frame for arrival in named.ws.log[position + 1 :] if named.owns(arrival.frame)] == []


def test_a_superuser_flag_taken_away_reaches_sockets_on_both_processes(
    servers: tuple[DaphneProcess, DaphneProcess],
    shell: Shell,
    tag: str,
    admin_token: str,
    sockets: Sockets,
    figures: Figures,
) -> None:
    a, b = servers
    user = (f"super-{tag}@example.com", PASSWORD)
    shell.create_user(*user, perms=("view_product",), superuser=True)
    scene = Scene.create(b, admin_token, tag)
    lost, kept = [], []
    for server, where in ((a, "A"), (b, "B")):
        for ws in (sockets.rest(server, where, user), sockets.graphql(server, where, user)):
            customers, products = customer_and_product_subs(scene, ws, visible=True)
            lost.append(customers)
            kept.append(products)
    join(scene, lost + kept)
    settle(scene, kept)

    committed = shell.commit(f"user = User.objects.get(email={user[0]!r})\nuser.is_superuser = False\nuser.save()")
    scene.changed = True

    figures.record("superuser flag taken away", committed, assert_removed(scene, lost, kept))
    for sub in lost:
        assert_refused(sub.ws, "customers")


def test_the_public_group_losing_a_permission_ends_public_subscriptions(
    servers: tuple[DaphneProcess, DaphneProcess],
    shell: Shell,
    tag: str,
    admin_token: str,
    sockets: Sockets,
    figures: Figures,
) -> None:
    a, b = servers
    scene = Scene.create(a, admin_token, tag)  # public sockets on B, writes on A
    try:
        # Customers (without the credit limit) become public too: they show the sockets go on after the change.
        shell.commit("Group.objects.get(name='Public').permissions.add(perm('view_customer'))")
        rest, graphql = sockets.rest(b, "B", None), sockets.graphql(b, "B", None)
        rp, rc = subscribe(scene, Sub(rest, "p", "products")), subscribe(scene, Sub(rest, "c", "customers"))
        gp, gc = subscribe(scene, Sub(graphql, "p", "products")), subscribe(scene, Sub(graphql, "c", "customers"))
        join(scene, [rp, rc, gp, gc])
        settle(scene, [rc, gc])

        committed = shell.commit("Group.objects.get(name='Public').permissions.remove(perm('view_product'))")
        scene.changed = True

        figures.record("Public group lost view_product", committed, assert_removed(scene, [rp, gp], [rc, gc]))
        assert_refused(rest, "products")
        assert_refused(graphql, "products")
    finally:
        shell.run("Group.objects.get(name='Public').permissions.set([perm('view_product')])")  # as seeded


def test_a_permission_granted_widens_open_subscriptions(
    servers: tuple[DaphneProcess, DaphneProcess],
    shell: Shell,
    tag: str,
    admin_token: str,
    sockets: Sockets,
    figures: Figures,
) -> None:
    a, b = servers
    user = (f"editor-{tag}@example.com", PASSWORD)
    shell.create_user(*user, groups=("Editors",))
    scene = Scene.create(b, admin_token, tag)
    rc, rp = customer_and_product_subs(scene, sockets.rest(a, "A", user), visible=False)
    gc, gp = customer_and_product_subs(scene, sockets.graphql(a, "A", user), visible=False)
    join(scene, [rc, rp, gc, gp])
    settle(scene, [rp, gp])

    committed = shell.commit(f"User.objects.get(email={user[0]!r}).user_permissions.add(perm('change_customer'))")
    scene.changed = True

    found = wait_for({rc.name: after_change(scene, rc, visible=True)}, lambda: scene.write("customers"))
    figures.record("user permission granted", committed, found, "first widened event (writes retried)")
    # A GraphQL operation selects only fields its caller may read when it starts (likha_realtime.graphql.readable):
    # the open one, without the credit limit, goes on as it was; a new one selecting it starts under the new rights.
    shown = subscribe_once_readable(scene, gc.ws)
    figures.record("user permission granted", committed, shown, "first GraphQL event selecting the new field")
    settle(scene, [rp, gp])
    seen = [(name, visible) for _, name, visible in scene.events(rc)]
    assert [name for name, visible in seen if visible and name not in scene.after] == []  # not before the change
    first = next(index for index, (name, visible) in enumerate(seen) if visible)
    assert all(visible for _, visible in seen[first:]), seen  # and once widened, for good
    assert [name for _, name, visible in scene.events(gc) if visible] == []
    assert [name for _, name, _ in scene.events(gc) if name in scene.after]  # it went on after the change


def subscribe_once_readable(scene: Scene, ws: TimedSocket) -> dict[str, Arrival]:
    """Subscribe ``ws`` to the customer selecting its credit limit, again while the socket's rights do not hold the
    field yet (the grant reaches each socket on its own; the refusal is validation's ``error`` for the id), writing the
    customer meanwhile; the arrival of the first event, which shows the limit."""
    query = graphql_updates("customers", GRAPHQL_FIELDS["customers"])
    message = "Cannot query field 'credit_limit' on type 'customers'."
    unknown = [{"message": message, "locations": [{"line": 1, "column": query.index("credit_limit") + 1}]}]
    deadline = time.monotonic() + TIMEOUT
    for attempt in itertools.count(1):
        sub = subscribe(scene, Sub(ws, f"widened-{attempt}", "customers"), visible=True)
        while (arrival := ws.until(sub.owns, PATIENCE)) is None:
            assert time.monotonic() < deadline, f"no answer for {sub.name}; last frames: {ws.recent()}"
            scene.write("customers")
        if arrival.frame["type"] != "error":
            parsed = scene.parse(sub, arrival.frame)  # the frame checked whole
            assert parsed is not None and parsed[1], arrival.frame  # with the credit limit
            return {sub.name: arrival}
        assert arrival.frame == {"id": sub.id, "type": "error", "payload": unknown}  # validated under the old rights
        assert time.monotonic() < deadline, f"{sub.name} still refused after {TIMEOUT}s"
    raise AssertionError("unreachable")

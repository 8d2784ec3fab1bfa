"""Issue 9's scenarios 1–3 against any two running server processes, as one code path: scripts/replay_rights.py
replays them against ``make run`` + ``make serve PORT=8001``, tests/live/test_rights_live.py against the harness's
daphne processes. Each raises ``AssertionError`` saying what went wrong, or returns what it measured (seconds).

Rights are changed the one way the servers hear of: Django's ORM in a ``manage.py shell`` on the servers' database
and Redis (``Shell``), whose signals broadcast the change after commit. Everything else goes over HTTP and sockets.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tests.live.conftest import ADMIN, EDITOR
from tests.live.rights import (
    Frame,
    Scene,
    Server,
    Shell,
    Sockets,
    Sub,
    TimedSocket,
    assert_refused,
    assert_removed,
    assert_within,
    equals,
    http,
    join,
    login,
    settle,
    subscribe,
    wait_for,
)

FINANCE = ("finance@example.com", "finance-password")
Credentials = tuple[str, str]


@dataclass(frozen=True)
class Stage:
    """Two server processes on one database and one Redis, the shell that changes rights there, an admin token."""

    servers: tuple[Server, Server]
    shell: Shell
    admin_token: str

    @classmethod
    def connect(cls, servers: tuple[Server, Server], shell: Shell, admin: Credentials = ADMIN) -> Stage:
        return cls(servers, shell, login(servers[0], admin))

    def where(self, server: Server) -> str:
        return "A" if server is self.servers[0] else "B"


# -- rights changes reach every open socket (scenarios 2 and 3, and every trigger of the live tests) -------------


def rights_change_ends(
    stage: Stage,
    trigger: str,
    credentials: Credentials | None,
    change: str,
    lost: str = "customers",
    kept: str = "products",
    visible: bool = False,
) -> dict[str, float]:
    """REST and GraphQL sockets of ``credentials`` (``None``: the public role) on both processes subscribe to a
    ``lost`` and a ``kept`` row; the shell commits ``change``. Each ``lost`` subscription must end with the contract's
    error within ``BOUND`` of the commit, nothing more may come for it, the ``kept`` ones go on, and each socket
    refuses ``lost`` afterwards (a new subscription, a read). ``visible``: the credit limit is readable before.
    Returns each error frame's seconds after the commit."""
    scene = Scene.create(stage.servers[1], stage.admin_token, uuid.uuid4().hex[:10])
    try:
        with Sockets() as sockets:
            gone, going_on = [], []
            for server in stage.servers:
                where = stage.where(server)
                for ws in (sockets.rest(server, where, credentials), sockets.graphql(server, where, credentials)):
                    gone.append(subscribe(scene, Sub(ws, lost[0], lost), visible))
                    going_on.append(subscribe(scene, Sub(ws, kept[0], kept), visible))
            join(scene, gone + going_on)
            settle(scene, going_on)

            committed = stage.shell.commit(change)
            scene.changed = True

            measured = assert_within(trigger, committed, assert_removed(scene, gone, going_on))
            for sub in gone:
                assert_refused(sub.ws, lost)
            return measured
    finally:
        scene.remove()


def scenario_group_removed(stage: Stage, user: Credentials = EDITOR) -> dict[str, float]:
    """Scenario 2: ``user`` (the demo editor) is removed from the ``Editors`` group while its REST and GraphQL
    sockets on both processes subscribe to customers: every one ends within a second. The user holds
    ``view_product`` itself meanwhile (products go on: what shows that nothing more comes), and is put back."""
    held = stage.shell.answer(
        f"user = User.objects.get(email={user[0]!r})\n"
        "assert user.groups.filter(name='Editors').exists(), 'not in the Editors group (make run SEED_ARGS=--reset)'\n"
        "print('ANSWER', 'held' if user.user_permissions.filter(pk=perm('view_product').pk).exists() else 'added')\n"
        "user.user_permissions.add(perm('view_product'))\n"
    )
    try:
        return rights_change_ends(
            stage,
            "user removed from its group",
            user,
            f"User.objects.get(email={user[0]!r}).groups.remove(Group.objects.get(name='Editors'))",
        )
    finally:
        restore = f"user = User.objects.get(email={user[0]!r})\nuser.groups.add(Group.objects.get(name='Editors'))\n"
        if held == "added":
            restore += "user.user_permissions.remove(perm('view_product'))\n"
        stage.shell.run(restore)


def public_mode(stage: Stage) -> None:
    """Scenario 3 needs sockets in the public role on both processes: REST and GraphQL in public mode."""
    for server in stage.servers:
        status, body = http(server, "GET", "/server/info")
        assert status == 200, body
        modes = {name: body["data"]["websocket"][name]["authentication"] for name in ("rest", "graphql")}
        assert modes == {"rest": "public", "graphql": "public"}, (
            f"{server.http} authenticates its sockets {modes}; the public role's scenario needs both in public mode "
            "(WEBSOCKETS_REST_AUTH=public WEBSOCKETS_GRAPHQL_AUTH=public)"
        )


def scenario_public_role(stage: Stage) -> dict[str, float]:
    """Scenario 3: the ``Public`` group loses ``view_product`` while public REST and GraphQL sockets on both
    processes subscribe to products: each subscription ends within a second, and each socket refuses products to a
    new subscription and to a read (REST ``items`` read, GraphQL ``{ products { id } }``). Customers (without the
    credit limit) are public meanwhile and go on; the group's permissions are put back as they were."""
    public_mode(stage)
    before = stage.shell.answer(
        "group = Group.objects.get(name='Public')\n"
        "assert group.permissions.filter(pk=perm('view_product').pk).exists(), 'Public cannot view products'\n"
        "print('ANSWER', *group.permissions.values_list('codename', flat=True))\n"
        "group.permissions.add(perm('view_customer'))\n"
    ).split()
    try:
        return rights_change_ends(
            stage,
            "Public group lost view_product",
            None,
            "Group.objects.get(name='Public').permissions.remove(perm('view_product'))",
            lost="products",
            kept="customers",
        )
    finally:
        stage.shell.run(f"Group.objects.get(name='Public').permissions.set([perm(name) for name in {before!r}])")


# -- scenario 1: a shared re-read shows each subscriber only what it may read ------------------------------------

ORDER = 2
SUBSCRIBE = {
    "type": "subscribe",
    "collection": "sales_orders",
    "query": {"fields": ["id", "customer.*"]},
    "item": ORDER,
    "uid": "s",
}
# Where the editor's and finance's sockets are (indexes into Stage.servers), and who subscribes first.
PLACEMENTS = ((0, 0), (0, 1))
ORDERS = ("editor first", "finance first")
COMBINATIONS = tuple(itertools.product(PLACEMENTS, ORDERS))


@contextlib.contextmanager
def finance_user(shell: Shell, finance: Credentials = FINANCE) -> Iterator[None]:
    """``finance`` exists for the scenario (the Editors group and ``change_customer``: it reads credit limits),
    and is deleted afterwards (``seed_demo`` refuses a database with other users than the demo logins)."""
    shell.run(
        f"User.objects.filter(email={finance[0]!r}).delete()\n"
        f"user = User.objects.create_user({finance[0]!r}, {finance[1]!r})\n"
        "user.groups.set([Group.objects.get(name='Editors')])\n"
        "user.user_permissions.set([perm('change_customer')])\n"
    )
    try:
        yield
    finally:
        shell.run(f"User.objects.filter(email={finance[0]!r}).delete()")


@dataclass
class Viewer:
    """One subscriber of scenario 1 on a REST socket of its own: the order (the issue's subscription ``s``), the
    order's customer (``c``) and the scene's product (``p``, the barrier), and what it may read of them by HTTP."""

    ws: TimedSocket
    order: Frame  # sales_orders/2, fields id and customer.*, as an HTTP read under this viewer's rights shows it
    customer: Frame  # the order's customer, all the fields this viewer may read
    barrier: Sub

    def frames(self, uid: str, since: int = 0, until: int | None = None) -> list[Frame]:
        """The frames of subscription ``uid`` received so far, between two positions of the socket's log."""
        return [arrival.frame for arrival in self.ws.log[since:until] if arrival.frame.get("uid") == uid]

    def order_update(self, name: str, credit_limit: str) -> Frame:
        """The order as this viewer reads it (``customer.*``), its customer with that name and credit limit."""
        data = {**self.order, "customer": shown(self.order["customer"], name, credit_limit)}
        return {"type": "subscription", "event": "update", "data": data, "uid": "s"}

    def customer_update(self, name: str, credit_limit: str) -> Frame:
        """The customer as this viewer reads it, with that name and credit limit."""
        data = shown(self.customer, name, credit_limit)
        return {"type": "subscription", "event": "update", "data": data, "uid": "c"}


def shown(customer: Frame, name: str, credit_limit: str) -> Frame:
    """A customer as read before, with that name and credit limit (where it was read: finance's, not the editor's)."""
    row = {**customer, "name": name}
    if "credit_limit" in row:
        row["credit_limit"] = credit_limit
    return row


def open_viewer(stage: Stage, sockets: Sockets, scene: Scene, server: Server, credentials: Credentials) -> Viewer:
    """Reads the order and its customer by HTTP under ``credentials``, then subscribes to them (the issue's message
    and an item subscription to the customer) and to the scene's product on a REST socket of ``server``: each
    ``init`` must equal the HTTP read."""
    token = login(server, credentials)
    status, order = http(server, "GET", f"/items/sales_orders/{ORDER}?fields=id,customer.*", token=token)
    assert status == 200 and order["data"] is not None, f"{credentials[0]} cannot read order {ORDER}: {order}"
    customer_id = order["data"]["customer"]["id"]
    status, customer = http(server, "GET", f"/items/customers/{customer_id}", token=token)
    assert status == 200, customer
    ws = sockets.rest(server, stage.where(server), credentials)
    viewer = Viewer(ws, order["data"], customer["data"], subscribe(scene, Sub(ws, "p", "products")))
    item = {"type": "subscribe", "collection": "customers", "query": {"fields": ["*"]}, "item": customer_id, "uid": "c"}
    for message, row in ((SUBSCRIBE, viewer.order), (item, viewer.customer)):
        init = {"type": "subscription", "event": "init", "data": row, "uid": message["uid"]}
        assert ws.request(message) == init, f"{credentials[0]}: {ws.recent()}"
    return viewer


class OrderWriter:
    """The admin's writes of scenario 1, over HTTP on one process, and how to put the rows back afterwards."""

    def __init__(self, stage: Stage) -> None:
        self.server, self.token = stage.servers[0], stage.admin_token
        status, order = http(self.server, "GET", f"/items/sales_orders/{ORDER}", token=self.token)
        assert status == 200 and order["data"] is not None, order
        self.order: Frame = order["data"]
        assert self.order["status"] != "draft", f"order {ORDER} is a draft: editors cannot read it"
        status, customer = http(self.server, "GET", f"/items/customers/{self.order['customer']}", token=self.token)
        assert status == 200, customer
        self.customer: Frame = customer["data"]
        # Both readable; the row rule of both subscribers tests the status, so each change is news to them.
        others = [value for value in ("shipped", "confirmed") if value != self.order["status"]]
        self.statuses = itertools.cycle([*others, self.order["status"]])
        self.name, self.credit_limit = self.customer["name"], self.customer["credit_limit"]
        self.numbers = itertools.count(1)

    def patch(self, collection: str, key: int, data: Frame) -> None:
        status, body = http(self.server, "PATCH", f"/items/{collection}/{key}", data, self.token)
        assert status == 200, body

    def order_status(self) -> None:
        self.patch("sales_orders", ORDER, {"status": next(self.statuses)})

    def customer_name(self) -> str:
        self.name = f"{self.customer['name']} ({next(self.numbers)})"
        self.patch("customers", self.customer["id"], {"name": self.name})
        return self.name

    def customer_credit_limit(self) -> str:
        """Only the credit limit changes (one more than it was, in the database's format)."""
        units, cents = self.credit_limit.split(".")
        self.credit_limit = f"{int(units) + 1}.{cents}"
        self.patch("customers", self.customer["id"], {"credit_limit": self.credit_limit})
        return self.credit_limit

    def restore(self) -> None:
        self.patch("sales_orders", ORDER, {"status": self.order["status"]})
        values = {key: self.customer[key] for key in ("name", "credit_limit")}
        self.patch("customers", self.customer["id"], values)


def updated(uid: str) -> Callable[[Frame], bool]:
    return lambda frame: frame.get("uid") == uid and frame.get("event") == "update"


def shared_reread(
    stage: Stage, placement: tuple[int, int], first: str, editor: Credentials = EDITOR, finance: Credentials = FINANCE
) -> dict[str, float]:
    """Scenario 1 (``finance`` exists: ``finance_user``). The editor and finance subscribe to order 2 with
    ``customer.*`` and to its customer, on ``stage.servers[placement[0]]`` and ``[placement[1]]``, ``first`` says who
    first. The admin changes the order: every ``update`` is exactly the viewer's own HTTP read (the editor's never
    has the credit limit, finance's always). The admin changes only the customer's credit limit: finance hears of
    it, the editor does not — its next frames are those of two later visible writes, in order, and nothing else.
    Returns each later write's seconds until its frame."""
    admin = OrderWriter(stage)
    scene = Scene.create(stage.servers[0], stage.admin_token, uuid.uuid4().hex[:10])
    try:
        with Sockets() as sockets:
            people = {"editor": (placement[0], editor), "finance": (placement[1], finance)}
            order = ("editor", "finance") if first == "editor first" else ("finance", "editor")
            viewers = {
                who: open_viewer(stage, sockets, scene, stage.servers[people[who][0]], people[who][1]) for who in order
            }
            return shared_reread_checks(scene, admin, viewers["editor"], viewers["finance"])
    finally:
        admin.restore()
        scene.remove()


def shared_reread_checks(scene: Scene, admin: OrderWriter, editor: Viewer, finance: Viewer) -> dict[str, float]:
    viewers = {"editor": editor, "finance": finance}
    assert "credit_limit" not in editor.customer and "credit_limit" not in editor.order["customer"], editor.order
    assert "credit_limit" in finance.customer and "credit_limit" in finance.order["customer"], finance.order
    barrier = [viewer.barrier for viewer in viewers.values()]
    # Every subscription has joined the fan-out on its process (written until each has had an event) ...
    join(scene, barrier)
    for uid, write in (("s", admin.order_status), ("c", admin.customer_name)):
        wait_for({who: (Sub(viewer.ws, uid, uid), updated(uid)) for who, viewer in viewers.items()}, write)
    settle(scene, barrier)  # ... and every event so far has been delivered: from here on, one frame per event
    since = {who: len(viewer.ws.log) for who, viewer in viewers.items()}

    for _ in range(2):
        admin.order_status()
        for who, viewer in viewers.items():
            viewer.ws.expect(updated("s"), f"{who}: an update of the order")
    name, credit_limit = admin.name, admin.customer_credit_limit()
    hidden = finance.customer_update(name, credit_limit)
    finance.ws.expect(equals(hidden), "finance: the new credit limit")
    latencies, names = {}, []
    for _ in range(2):  # awaited one by one: each frame can only come from its own write's event
        started = time.time()
        names.append(admin.customer_name())
        for who, viewer in viewers.items():
            wanted = viewer.customer_update(names[-1], credit_limit)
            latencies[f"{who}, name {names[-1]!r}"] = viewer.ws.expect(equals(wanted), f"{who}: {wanted}").at - started
    settle(scene, barrier)  # whatever these writes would send has been sent

    original = admin.customer["credit_limit"]
    for who, viewer in viewers.items():
        # The order: exactly as the viewer reads it, every time (its customer's name changed while joining).
        init, *joined = viewer.frames("s", until=since[who])
        assert init == {"type": "subscription", "event": "init", "data": viewer.order, "uid": "s"}, init
        shown = [viewer.order_update(frame["data"]["customer"]["name"], original) for frame in joined]
        assert shown == joined, f"{who}: {joined}"
        later = [viewer.order_update(name, original)] * 2
        assert viewer.frames("s", since[who]) == later, f"{who}: {viewer.frames('s', since[who])}"
        # The customer: the names it was given while joining, under the credit limit it had then.
        init, *joined = viewer.frames("c", until=since[who])
        assert init == {"type": "subscription", "event": "init", "data": viewer.customer, "uid": "c"}, init
        assert [viewer.customer_update(frame["data"]["name"], original) for frame in joined] == joined, joined
    later = [editor.customer_update(name, credit_limit) for name in names]
    assert editor.frames("c", since["editor"]) == later, f"editor: {editor.frames('c', since['editor'])}"
    later = [hidden, *(finance.customer_update(name, credit_limit) for name in names)]
    assert finance.frames("c", since["finance"]) == later, f"finance: {finance.frames('c', since['finance'])}"
    return latencies

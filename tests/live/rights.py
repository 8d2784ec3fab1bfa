"""Live rights-change scenes: sockets whose frames are stamped on arrival, the shell that changes rights, and the
rows a test writes with the exact frames each subscription must receive for them (tests/live/test_rights_live.py).

Soundness rests on the server's per-process fan-out: one worker per process takes every event from the process's one
channel in order and re-reads rows at delivery time. So a frame shows the row as it is when its event is delivered
(not as its write left it), and once a frame that only a later write can explain has arrived on a socket, every
earlier event has been read for that process (``settle``).
"""

from __future__ import annotations

import itertools
import json
import queue
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed

from tests.live.client import JsonSocket
from tests.live.harness import LiveDatabase

TIMEOUT = 10.0  # for any one awaited frame, on a busy 2-core machine
PATIENCE = 0.5  # after a write, how long its frame may take before the next write
BOUND = 1.0  # issue 9: a rights change reaches every open socket, on every process, within a second of its commit
REMOVED = "Subscription removed: the new credentials cannot read it."
# GraphQL selects the credit limit only where the subscriber may read it when it subscribes: a field it may not read
# is not in the schema its operations are validated against (likha_realtime.graphql.readable).
GRAPHQL_FIELDS = {"customers": ("id", "name", "credit_limit"), "products": ("id", "name")}

Frame = dict[str, Any]


class Server(Protocol):
    """What the scenes need of a server process: a harness ``DaphneProcess``, or a ``Remote`` already running."""

    @property
    def http(self) -> str: ...

    def ws_url(self, path: str = "/websockets") -> str: ...


@dataclass(frozen=True)
class Remote:
    """A server process already running, by its base URL (``http://127.0.0.1:8000``): scripts/replay_rights.py."""

    http: str

    def ws_url(self, path: str = "/websockets") -> str:
        return "ws" + self.http.removeprefix("http") + path


@dataclass(frozen=True)
class Arrival:
    frame: Frame
    at: float  # time.time() when the reader thread took the frame off the wire


class TimedSocket:
    """A live socket read by a thread of its own, so each frame's arrival time is known however late the test looks.

    Every frame the test takes is kept in ``log``, in order, for the checks made at the end. The server's heartbeat
    ``ping`` is answered and not queued (a long test must not be closed 4408 for silence).
    """

    def __init__(self, kind: str, where: str, url: str, **kwargs: Any) -> None:
        self.kind = kind  # "rest" or "graphql"
        self.where = where  # which server process, for messages
        self.socket = JsonSocket(url, **kwargs)
        self.log: list[Arrival] = []
        self._queue: queue.Queue[Arrival | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                frame = json.loads(self.socket.conn.recv())
                if frame == {"type": "ping"}:
                    self.socket.send({"type": "pong"})
                    continue
                self._queue.put(Arrival(frame, time.time()))
        except ConnectionClosed:
            pass
        finally:
            self._queue.put(None)

    def send(self, frame: Frame) -> None:
        self.socket.send(frame)

    def take(self, timeout: float) -> Arrival | None:
        """The next frame (logged), or ``None`` when none arrives within ``timeout``; fails once the socket closed."""
        try:
            arrival = self._queue.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None
        if arrival is None:
            self._queue.put(None)
            raise AssertionError(f"the {self.kind} socket closed; last frames before: {self.recent()}")
        self.log.append(arrival)
        return arrival

    def until(self, wanted: Callable[[Frame], bool], timeout: float) -> Arrival | None:
        """Takes frames until one is ``wanted`` (returned); ``None`` when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while (arrival := self.take(deadline - time.monotonic())) is not None:
            if wanted(arrival.frame):
                return arrival
        return None

    def expect(self, wanted: Callable[[Frame], bool], what: str, timeout: float = TIMEOUT) -> Arrival:
        arrival = self.until(wanted, timeout)
        assert arrival is not None, (
            f"{what}: not received on the {self.kind} socket in {timeout}s; last frames: {self.recent()}"
        )
        return arrival

    def request(self, frame: Frame) -> Frame:
        """Send, and the next frame (only where no event can be in flight)."""
        self.send(frame)
        return self.expect(lambda _: True, f"a reply to {frame}").frame

    def find(self, wanted: Callable[[Frame], bool]) -> Arrival | None:
        return next((arrival for arrival in self.log if wanted(arrival.frame)), None)

    def recent(self, count: int = 8) -> list[Frame]:
        """The last frames taken, for failure messages."""
        return [arrival.frame for arrival in self.log[-count:]]

    def close(self) -> None:
        self.socket.close()


@dataclass(frozen=True)
class Sub:
    """One subscription: REST ``uid`` or GraphQL operation id, on one socket, to one collection."""

    ws: TimedSocket
    id: str
    collection: str
    fields: tuple[str, ...] = ("*",)  # REST customers (products: id and name); GraphQL: what ``subscribe`` selected

    @property
    def name(self) -> str:
        return f"{self.ws.kind} {self.id!r} on {self.ws.where}"

    def owns(self, frame: Frame) -> bool:
        return frame.get("uid" if self.ws.kind == "rest" else "id") == self.id

    def removed(self) -> Frame:
        """The frame ending this subscription when new rights cannot read it (the issue 9 contract)."""
        if self.ws.kind == "rest":
            error = {"code": "FORBIDDEN", "message": REMOVED}
            return {"type": "subscribe", "status": "error", "error": error, "uid": self.id}
        return {"type": "error", "id": self.id, "payload": [{"message": REMOVED, "extensions": {"code": "FORBIDDEN"}}]}


class Shell:
    """``manage.py shell -c`` configured like the servers (same database, same Redis and prefix): its rights
    changes broadcast through the channel layer the servers listen on."""

    PRELUDE = textwrap.dedent(
        """\
        import time
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group, Permission
        from django.db import transaction
        User = get_user_model()
        def perm(codename):
            return Permission.objects.get(content_type__app_label="erp_demo", codename=codename)
        """
    )

    def __init__(self, database: LiveDatabase, env: dict[str, str]) -> None:
        self.database = database
        self.env = env

    def run(self, code: str) -> str:
        return self.database.manage("shell", "-c", self.PRELUDE + code, extra_env=self.env)

    def answer(self, code: str) -> str:
        """Run ``code``, which prints one line ``ANSWER <text>``: the text (the shell prints lines of its own)."""
        out = self.run(code)
        lines = [line for line in out.splitlines() if line.startswith("ANSWER ")]
        assert len(lines) == 1, out
        return lines[0].removeprefix("ANSWER ")

    def commit(self, code: str) -> float:
        """Run ``code`` in one transaction; the wall-clock time of its commit (the first on-commit hook, registered
        before the change's own, so before any broadcast it causes)."""
        stamp = "transaction.on_commit(lambda: print('COMMITTED', repr(time.time()), flush=True))"
        out = self.run(f"with transaction.atomic():\n    {stamp}\n{textwrap.indent(code, '    ')}\n")
        lines = [line for line in out.splitlines() if line.startswith("COMMITTED ")]
        assert len(lines) == 1, out
        return float(lines[0].split()[1])

    def create_user(
        self,
        email: str,
        password: str,
        groups: tuple[str, ...] = (),
        perms: tuple[str, ...] = (),
        superuser: bool = False,
    ) -> None:
        self.run(
            f"user = User.objects.create_user({email!r}, {password!r}, is_superuser={superuser!r})\n"
            f"user.groups.set([Group.objects.get(name=name) for name in {list(groups)!r}])\n"
            f"user.user_permissions.set([perm(codename) for codename in {list(perms)!r}])\n"
        )


def http(server: Server, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """One HTTP request with a JSON body (none for ``None``) and the admin's (or another) bearer token."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.http + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def login(server: Server, credentials: tuple[str, str]) -> str:
    """An access token of ``credentials`` (``POST /auth/login``)."""
    status, body = http(server, "POST", "/auth/login", {"email": credentials[0], "password": credentials[1]})
    assert status == 200, f"login of {credentials[0]} on {server.http}: {status} {body}"
    token: str = body["data"]["access_token"]
    return token


@dataclass
class Scene:
    """A test's own customer and product, written by the admin over HTTP on ``writer``, and every value written.

    Each write has a name of its own; a customer write also a credit limit of its own. Once ``changed`` is set
    (the rights change has committed) names are recorded in ``after``: a frame showing one was read after the change.
    """

    writer: Server
    token: str
    customer: Frame
    product: Frame
    initial: str  # both rows' name as created
    credits: dict[str, str] = field(default_factory=dict)
    after: set[str] = field(default_factory=set)
    changed: bool = False
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def create(cls, writer: Server, token: str, tag: str) -> Scene:
        customer = {"name": f"rights-{tag}", "email": f"rights-{tag}@example.com", "credit_limit": "100.50"}
        status, body = http(writer, "POST", "/items/customers", customer, token)
        assert status == 200, body
        scene = cls(writer, token, body["data"], {}, customer["name"])
        scene.credits[customer["name"]] = customer["credit_limit"]
        status, body = http(writer, "POST", "/items/products", {"name": f"rights-{tag}", "sku": f"R-{tag}"}, token)
        assert status == 200, body
        scene.product = body["data"]
        return scene

    def remove(self) -> None:
        """Delete both rows (a replay against ``make run`` leaves the demo data as it found it)."""
        for collection, row in (("customers", self.customer), ("products", self.product)):
            status, body = http(self.writer, "DELETE", f"/items/{collection}/{row['id']}", token=self.token)
            assert status == 204, body

    def write(self, collection: str) -> str:
        number = next(self._numbers)
        name = f"{'after' if self.changed else 'before'}-{number}"
        data = {"name": name}
        if collection == "customers":
            data["credit_limit"] = self.credits[name] = f"{1000 + number}.50"
        if self.changed:
            self.after.add(name)
        key = self.customer["id"] if collection == "customers" else self.product["id"]
        status, body = http(self.writer, "PATCH", f"/items/{collection}/{key}", data, self.token)
        assert status == 200, body
        return name

    # -- the frames each subscription must receive ----------------------------------------------------------------

    def row(self, sub: Sub, name: str, visible: bool) -> Frame:
        """The row as the subscriber reads it; ``visible``: with the customer's credit limit."""
        if sub.collection == "products":
            key = self.product["id"]
            return {"id": key if sub.ws.kind == "rest" else str(key), "name": name}
        if sub.ws.kind == "graphql":
            credit = self.credits[name] if visible else None
            row = {"id": str(self.customer["id"]), "name": name, "credit_limit": credit}
            return {key: row[key] for key in sub.fields}
        row = {**self.customer, "name": name, "credit_limit": self.credits[name]}
        if not visible:
            del row["credit_limit"]
        return row if sub.fields == ("*",) else {key: row[key] for key in sub.fields if key in row}

    def event(self, sub: Sub, name: str, visible: bool) -> Frame:
        row = self.row(sub, name, visible)
        if sub.ws.kind == "rest":
            return {"type": "subscription", "event": "update", "data": [row], "uid": sub.id}
        mutated = {"key": row["id"], "event": "update", "data": row}
        return {"id": sub.id, "type": "next", "payload": {"data": {f"{sub.collection}_mutated": mutated}}}

    def parse(self, sub: Sub, frame: Frame) -> tuple[str, bool] | None:
        """(name, credit limit visible) of an event frame of ``sub``, checked whole; ``None`` for any other frame."""
        if not sub.owns(frame) or frame.get("type") not in ("subscription", "next") or frame.get("event") == "init":
            return None
        try:
            data = frame["data"][0] if sub.ws.kind == "rest" else frame["payload"]["data"][f"{sub.collection}_mutated"]
            row = data if sub.ws.kind == "rest" else data["data"]
            name = row["name"]
        except (KeyError, IndexError, TypeError) as error:
            raise AssertionError(f"unexpected frame for {sub.id}: {frame}") from error
        visible = row.get("credit_limit") is not None
        assert frame == self.event(sub, name, visible), frame
        return name, visible

    def events(self, sub: Sub) -> list[tuple[int, str, bool]]:
        """(position in the socket's log, name, visible) of every event frame of ``sub`` received so far."""
        found = []
        for position, arrival in enumerate(sub.ws.log):
            parsed = self.parse(sub, arrival.frame)
            if parsed is not None:
                found.append((position, *parsed))
        return found


# -- opening sockets and subscribing ----------------------------------------------------------------------------


def rest_socket(server: Server, where: str, credentials: tuple[str, str] | None) -> TimedSocket:
    ws = TimedSocket("rest", where, server.ws_url())
    if credentials is not None:
        reply = ws.request({"type": "auth", "email": credentials[0], "password": credentials[1]})
        assert reply["type"] == "auth" and reply["status"] == "ok", reply
    return ws


def graphql_socket(server: Server, where: str, credentials: tuple[str, str] | None) -> TimedSocket:
    ws = TimedSocket("graphql", where, server.ws_url("/graphql"), subprotocols=["graphql-transport-ws"])
    payload = {} if credentials is None else {"email": credentials[0], "password": credentials[1]}
    assert ws.request({"type": "connection_init", "payload": payload}) == {"type": "connection_ack"}
    return ws


def graphql_updates(collection: str, fields: tuple[str, ...]) -> str:
    return f"subscription {{ {collection}_mutated(event: update) {{ key event data {{ {' '.join(fields)} }} }} }}"


class Sockets:
    """The sockets of one scene, all closed at its end (``with Sockets() as sockets``)."""

    def __init__(self) -> None:
        self.opened: list[TimedSocket] = []

    def rest(self, server: Server, where: str, credentials: tuple[str, str] | None) -> TimedSocket:
        self.opened.append(rest_socket(server, where, credentials))
        return self.opened[-1]

    def graphql(self, server: Server, where: str, credentials: tuple[str, str] | None) -> TimedSocket:
        self.opened.append(graphql_socket(server, where, credentials))
        return self.opened[-1]

    def __enter__(self) -> Sockets:
        return self

    def __exit__(self, *exc: object) -> None:
        for ws in self.opened:
            ws.close()


def subscribe(scene: Scene, sub: Sub, visible: bool = False) -> Sub:
    """Subscribe to the scene's own row; a REST ``init`` is checked whole (``visible``: with the credit limit; a
    GraphQL subscription selects it only then)."""
    if sub.ws.kind == "graphql":
        selected = tuple(name for name in GRAPHQL_FIELDS[sub.collection] if visible or name != "credit_limit")
        query = graphql_updates(sub.collection, selected)
        sub.ws.send({"id": sub.id, "type": "subscribe", "payload": {"query": query}})
        return replace(sub, fields=selected)
    key = scene.customer["id"] if sub.collection == "customers" else scene.product["id"]
    fields = list(sub.fields) if sub.collection == "customers" else ["id", "name"]
    rows = {"fields": fields, "filter": {"id": {"_eq": key}}}
    reply = sub.ws.request({"type": "subscribe", "collection": sub.collection, "query": rows, "uid": sub.id})
    row = scene.row(sub, scene.initial, visible)
    assert reply == {"type": "subscription", "event": "init", "data": [row], "uid": sub.id}
    return sub


# -- phases -----------------------------------------------------------------------------------------------------


def equals(expected: Frame) -> Callable[[Frame], bool]:
    return lambda frame: frame == expected


def any_event(scene: Scene, sub: Sub) -> Callable[[Frame], bool]:
    return lambda frame: scene.parse(sub, frame) is not None


def join(scene: Scene, subs: list[Sub], timeout: float = 3 * TIMEOUT) -> None:
    """Write both rows until every subscription has had an event: each has joined the fan-out on its process
    (nothing tells a subscriber in another process when that is done)."""
    deadline = time.monotonic() + timeout
    while missing := [sub for sub in subs if not scene.events(sub)]:
        assert time.monotonic() < deadline, f"no event for {[sub.name for sub in missing]} in {timeout}s"
        scene.write("customers")
        scene.write("products")
        for sub in missing:
            sub.ws.until(any_event(scene, sub), PATIENCE)


def settle(scene: Scene, barrier: list[Sub], visible: bool = False) -> None:
    """Until every event written so far has been read by the servers holding ``barrier``'s sockets.

    Two rounds: a frame named by the first barrier write may come from an older event of that row (re-read late);
    one named by the second comes from the first barrier write's event or the second's, both queued behind every
    earlier write. A REST socket's frames leave in that order; a GraphQL operation's frames go out from its own
    task, fed in that order.
    """
    collection = barrier[0].collection
    for _ in range(2):
        name = scene.write(collection)
        for sub in barrier:
            expected = scene.event(sub, name, visible)
            sub.ws.expect(equals(expected), f"the barrier write {name} on {sub.name}")


def wait_for(
    targets: dict[str, tuple[Sub, Callable[[Frame], bool]]],
    write: Callable[[], object] | None = None,
    timeout: float = TIMEOUT,
) -> dict[str, Arrival]:
    """Until each target's frame is in its socket's log (by name); with ``write``, writing again each PATIENCE."""
    deadline = time.monotonic() + timeout
    while True:
        found = {key: hit for key, (sub, wanted) in targets.items() if (hit := sub.ws.find(wanted)) is not None}
        missing = [key for key in targets if key not in found]
        if not missing:
            return found
        assert time.monotonic() < deadline, f"not received in {timeout}s: {missing}; " + "; ".join(
            f"{key}, last frames: {targets[key][0].ws.recent()}" for key in missing
        )
        if write is not None:
            write()
        for key in missing:
            sub, wanted = targets[key]
            sub.ws.until(wanted, PATIENCE if write is not None else deadline - time.monotonic())


def assert_removed(scene: Scene, lost: list[Sub], barrier: list[Sub], visible: bool = False) -> dict[str, Arrival]:
    """The contract's error ends each ``lost`` subscription, and nothing more comes for it though its row is
    written again, while the ``barrier`` subscriptions (still readable) go on. Returns the error frames' arrivals."""
    found = wait_for({sub.name: (sub, equals(sub.removed())) for sub in lost})
    scene.write(lost[0].collection)  # what each lost subscription would have matched
    settle(scene, barrier, visible)  # ... has now been delivered wherever it was going to be
    for sub in lost:
        position = sub.ws.log.index(found[sub.name])
        assert [arrival.frame for arrival in sub.ws.log[position + 1 :] if sub.owns(arrival.frame)] == [], sub.name
    return found


def assert_within(trigger: str, committed: float, arrivals: dict[str, Arrival]) -> dict[str, float]:
    """Each frame came at most ``BOUND`` after the commit (the issue's "within a second"); seconds after it, by name."""
    measured = {name: arrival.at - committed for name, arrival in arrivals.items()}
    late = {name: seconds for name, seconds in measured.items() if seconds > BOUND}
    assert not late, f"{trigger}: later than {BOUND}s after the commit: {late} (all: {measured})"
    return measured


class Writer:
    """Writes one of the scene's rows again and again, from a thread of its own, while a rights change lands: some
    write then follows the change closely, so the first frame read under the new rights shows when it took effect
    (narrowing and widening send no frame of their own). ``with Writer(scene, "customers"):`` around the change."""

    PACE = 0.05  # between the end of one write and the start of the next

    def __init__(self, scene: Scene, collection: str) -> None:
        self.scene = scene
        self.collection = collection
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stopped.wait(self.PACE):
                self.scene.write(self.collection)
        except BaseException as error:  # reported by __exit__, in the test's thread
            self.error = error

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=TIMEOUT)
        assert not self.thread.is_alive(), "the writer thread did not stop"
        if self.error is not None:
            raise AssertionError(f"a write failed: {self.error}") from self.error


def assert_refused(ws: TimedSocket, collection: str) -> None:
    """The socket is still open and answers, and refuses ``collection`` to a new subscription and to a read."""
    denied = f'You don\'t have permission to access collection "{collection}" or it does not exist.'
    error = {"code": "FORBIDDEN", "message": denied}
    if ws.kind == "rest":
        ws.send({"type": "subscribe", "collection": collection, "uid": "again"})
        refusal = ws.expect(lambda frame: frame.get("uid") == "again", "the answer to a new subscribe").frame
        assert refusal == {"type": "subscribe", "status": "error", "error": error, "uid": "again"}
        ws.send({"type": "items", "action": "read", "collection": collection, "uid": "read"})
        refusal = ws.expect(lambda frame: frame.get("uid") == "read", "the answer to an items read").frame
        assert refusal == {"type": "items", "status": "error", "error": error, "uid": "read"}
        ws.send({"type": "ping", "uid": "alive"})
        ws.expect(lambda frame: frame == {"type": "pong", "uid": "alive"}, "pong")
        return
    ws.send({"type": "ping"})
    ws.expect(lambda frame: frame == {"type": "pong"}, "pong")
    query = f"subscription {{ {collection}_mutated {{ key }} }}"
    ws.send({"id": "again", "type": "subscribe", "payload": {"query": query}})
    refusal = ws.expect(lambda frame: frame.get("id") == "again", "the answer to a new subscribe").frame
    # Refused before the stream starts: an ``error`` message (graphql-transport-ws), nothing more for the id.
    location = {"locations": [{"line": 1, "column": 16}], "path": [f"{collection}_mutated"]}
    errors = [{"message": denied, **location, "extensions": {"code": "FORBIDDEN"}}]
    assert refusal == {"id": "again", "type": "error", "payload": errors}
    ws.send({"id": "read", "type": "subscribe", "payload": {"query": f"{{ {collection} {{ id }} }}"}})
    answer = ws.expect(lambda frame: frame.get("id") == "read", "the answer to a query").frame
    ws.expect(lambda frame: frame.get("id") == "read", "the end of the query")
    location = {"locations": [{"line": 1, "column": 3}], "path": [collection]}
    errors = [{"message": denied, **location, "extensions": {"code": "FORBIDDEN"}}]
    assert ws.log[-1].frame == {"id": "read", "type": "complete"}, ws.recent()
    assert answer == {"id": "read", "type": "next", "payload": {"data": None, "errors": errors}}, answer

"""Hostile frames for the three sockets: valid messages of every type, mutated, and arbitrary JSON or bytes.

Shared by the property tests (tests/likha_realtime/sockets/test_fuzz_sockets.py, hypothesis strategies) and the
live fuzz (tests/live/test_fuzz_live.py, a seeded ``random.Random`` drawing from the same pools), so both send the
same kinds of frames: wrong types, missing and extra keys, huge numbers, NaN and Infinity, deep nesting, unicode,
lone surrogates, NUL, binary and oversized frames.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# -- the frame: text or bytes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame: ``text`` (a text frame) or ``data`` (a binary frame); ``message`` what ``text`` encodes
    when it is JSON (for the oracle: the uid it carried)."""

    text: str | None = None
    data: bytes | None = None
    message: Any = None

    def __repr__(self) -> str:  # hypothesis prints falsifying examples: keep megabytes out of them
        shown = self.text if self.text is not None else repr(self.data)
        return f"Frame({shown[:300]!r}{'…' if len(shown) > 300 else ''} [{len(shown)} chars])"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' printer
        printer.text(repr(self))


def text_frame(message: Any) -> Frame:
    """``message`` as JSON text (NaN and Infinity written as Python does: not JSON, the server must refuse them)."""
    return Frame(text=json.dumps(message, allow_nan=True), message=message)


def nested(depth: int, opening: str = "[", closing: str = "]") -> str:
    return opening * depth + closing * depth


DEEP_TEXTS = (
    nested(100_000),  # issue 11: a RecursionError in strawberry left the GraphQL socket open but deaf
    nested(5_000),
    '{"a":' * 3_000 + "1" + "}" * 3_000,
    '{"type":"ping","uid":' + nested(2_000) + "}",
    '{"type":"subscribe","payload":' + '{"a":' * 5_000 + "1" + "}" * 5_000 + "}",
)
BROKEN_TEXTS = (
    "",
    " ",
    "{",
    "}",
    "null",
    "[]",
    '"type"',
    "NaN",
    "-Infinity",
    '{"type":"ping","uid":NaN}',
    '{"type":"ping","uid":1e999}',
    '{"type":"ping","uid":-1e400}',
    '{"type":"ping"}{"type":"ping"}',
    '{"type":"ping",}',
    "{'type':'ping'}",
    '{"type":"\\ud800"}',
    '{"type":"ping","uid":"\\udfff"}',
    '{"type":"ping","uid":"a\\u0000b"}',
    '{"type":"ping","uid":' + "9" * 5_000 + "}",
    '{"type":"ping","uid":1' + "0" * 400 + "}",
    '{"type":"ping","uid":0.' + "1" * 5_000 + "}",
    '{"\\u0000":"\\u0000"}',
    "\x00",
    "\ufeff{}",
    '{"type":"ping"}\x00',
    '{"type":"ping","type":"auth"}',
)


# -- hostile values -----------------------------------------------------------------------------------------------

HUGE_INTS = (2**63, -(2**63) - 1, 2**64, 10**300, -(10**300), 10**4000)
ODD_STRINGS = (
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\U0001f4a9",
    "e\u0301",
    "\u202e",
    "\ufeff",
    "NaN",
    "Infinity",
    "-1",
    "1e999",
    "0x10",
    "null",
    "*",
    "_eq",
    "products",
    "id,name",
    '{"id":{"_eq":1}}',
    "'; DROP TABLE products; --",
    "%s%s%n",
    "../../etc/passwd",
    "a" * 300,
    "é" * 5_000,
)
ODD_FLOATS = (0.0, -0.0, 1.5, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf"))


def deep_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def deep_dict(depth: int, key: str = "a") -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {key: value}
    return value


def deep_filter(depth: int, op: str = "_and") -> Any:
    value: Any = {"id": {"_eq": 1}}
    for _ in range(depth):
        value = {op: [value]}
    return value


# Made afresh for each use: a mutation may change what it was given (a shared one would become circular).
DEEP_VALUES = (
    lambda: deep_list(50),
    lambda: deep_list(900),
    lambda: deep_dict(900),
    lambda: deep_filter(40),
    lambda: deep_filter(450),
    lambda: deep_filter(450, "_or"),
)


def pick(pool: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """One of ``pool`` (by index: hypothesis then prints the strategy without the pool's megabytes)."""
    return st.integers(0, len(pool) - 1).map(pool.__getitem__)


def deep_value() -> st.SearchStrategy[Any]:
    return pick(DEEP_VALUES).map(lambda make: make())


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    pick(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    # lone surrogates, NUL and other controls, combining marks, other scripts
    st.text(alphabet=st.characters(categories=("Cs", "Cc", "Cf", "Mn", "Lo", "So", "Ll")), max_size=8),
    pick(ODD_STRINGS),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
hostile_values = st.one_of(json_values, deep_value())


# -- valid messages of every type, per socket ----------------------------------------------------------------------

QUERIES = (
    {"fields": ["id", "name", "price"]},
    {"fields": "id,name", "filter": '{"id":{"_gt":0}}', "sort": "-price", "limit": "5"},
    {"fields": ["*"], "filter": {"_or": [{"sku": {"_starts_with": "SKU"}}, {"price": {"_between": [1, 5]}}]}},
    {"fields": ["id", "customer.name"], "filter": {"customer": {"name": {"_contains": "a"}}}, "meta": "*"},
    {"limit": 2, "offset": 1, "page": 1, "meta": ["total_count", "filter_count"]},
)


def rest_messages(product: int) -> list[dict[str, Any]]:
    """One valid message of each type and action the REST socket knows (§3–§6)."""
    return [
        {"type": "ping", "uid": "p"},
        {"type": "pong"},
        {"type": "auth", "email": "editor@example.com", "password": "wrong-password", "uid": 1},
        {"type": "auth", "access_token": "not-a-token"},
        {"type": "auth", "refresh_token": "not-a-token"},
        {"type": "subscribe", "collection": "products", "query": QUERIES[0], "uid": "s1"},
        {"type": "subscribe", "collection": "sales_orders", "query": QUERIES[3], "event": "update", "uid": "s2"},
        {"type": "subscribe", "collection": "products", "item": product, "uid": "s3"},
        {"type": "unsubscribe", "uid": "s1"},
        {"type": "unsubscribe"},
        {"type": "items", "action": "read", "collection": "products", "query": QUERIES[1], "uid": "r"},
        {"type": "items", "action": "read", "collection": "products", "id": product, "uid": "r1"},
        {"type": "items", "action": "read", "collection": "customers", "ids": [1, 2], "query": QUERIES[4]},
        {"type": "items", "action": "create", "collection": "products", "data": {"name": "Fuzz", "sku": "FZ-1"}},
        {"type": "items", "action": "update", "collection": "products", "id": product, "data": {"stock": 3}},
        {"type": "items", "action": "update", "collection": "products", "ids": [product], "data": {"name": "x"}},
        {"type": "items", "action": "delete", "collection": "products", "query": {"filter": {"sku": {"_eq": "no"}}}},
        {"type": "items", "action": "delete", "collection": "products", "ids": []},
    ]


LOGS_MESSAGES = (
    {"type": "subscribe", "log_level": "info", "uid": "l"},
    {"type": "subscribe", "log_level": "trace"},
    {"type": "unsubscribe", "uid": 2},
    {"type": "ping", "uid": "p"},
    {"type": "pong"},
    {"type": "auth", "access_token": "not-a-token", "uid": "a"},
)

GRAPHQL_DOCUMENTS = (
    "{ products(limit: 2) { id name price } }",
    'query Q($f: JSON) { products(filter: $f, sort: ["-price"]) { id customer_count: id } }',
    "query { products_by_id(id: 1) { id name } }",
    "subscription { products_mutated(event: update) { key event data { id name } } }",
    "subscription { customers_mutated { key event } }",
    "mutation { update_products_item(id: 1, data: {stock: 5}) { id stock } }",
    "mutation { delete_products_item(id: 999999) { id } }",
    "{ __typename }",
    "{ __schema { types { name } } }",
    "{ products { id } products { name } }",
    "{ nope }",
    "subscription { a: products_mutated { key } b: customers_mutated { key } }",
    "{ products(limit: 99999999999) { id } }",
    "{ products(filter: 5) { id } }",
    "fragment F on products { id ...F } { products { ...F } }",
    "query A { __typename } query B { __typename }",
    "{ " + "products { " * 200 + "}" * 200,
    "{ " + "a { " * 3_000 + "}" * 3_001,
    "{ products { id " + "__typename " * 3_000 + "} }",
    "{" * 10_000,
    "\x00",
    "\ud800",
    "",
)
GRAPHQL_VARIABLES = ({}, {"f": {"id": {"_eq": 1}}}, {"f": "\ud800"}, {"f": deep_filter(300)}, {"f": None}, [], "x")


def graphql_messages() -> list[dict[str, Any]]:
    """One valid graphql-transport-ws message of each type (and the legacy protocol's, unknown on this one)."""
    return [
        {"type": "ping"},
        {"type": "ping", "payload": {"t": 1}},
        {"type": "pong", "payload": {}},
        {"type": "subscribe", "id": "1", "payload": {"query": GRAPHQL_DOCUMENTS[0]}},
        {"type": "subscribe", "id": "2", "payload": {"query": GRAPHQL_DOCUMENTS[1], "variables": {"f": None}}},
        {"type": "subscribe", "id": "3", "payload": {"query": GRAPHQL_DOCUMENTS[3], "operationName": None}},
        {"type": "complete", "id": "3"},
        {"type": "connection_init", "payload": {}},
        {"type": "start", "id": "4", "payload": {"query": GRAPHQL_DOCUMENTS[0]}},
        {"type": "stop", "id": "4"},
        {"type": "connection_terminate"},
    ]


# -- mutations ----------------------------------------------------------------------------------------------------


class Chooser:
    """Where the random choices of ``mutate`` come from: hypothesis (shrinkable) or a seeded ``random.Random``."""

    def choice(self, options: Any) -> Any:
        raise NotImplementedError

    def hostile(self) -> Any:
        raise NotImplementedError


class DrawChooser(Chooser):
    def __init__(self, draw: Any) -> None:
        self.draw = draw

    def choice(self, options: Any) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def hostile(self) -> Any:
        return self.draw(hostile_values)


class RandomChooser(Chooser):
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choice(self, options: Any) -> Any:
        return self.rng.choice(list(options))

    def hostile(self, depth: int = 0) -> Any:
        kind = self.rng.randrange(12 if depth < 3 else 9)
        if kind == 0:
            return self.rng.choice((None, True, False))
        if kind == 1:
            return self.rng.randint(-(2**70), 2**70)
        if kind == 2:
            return self.rng.choice(HUGE_INTS)
        if kind == 3:
            return self.rng.choice(ODD_FLOATS)
        if kind in (4, 5):
            return self.rng.choice(ODD_STRINGS)
        if kind == 6:
            return "".join(chr(self.rng.choice((0, 0xD800, 0xDFFF, 0x41, 0xE9, 0x1F4A9, 0x202E))) for _ in range(4))
        if kind == 7:
            return self.rng.choice(DEEP_VALUES)()
        if kind == 8:
            return self.rng.uniform(-1e6, 1e6)
        if kind in (9, 10):
            return [self.hostile(depth + 1) for _ in range(self.rng.randrange(4))]
        return {self.rng.choice(("a", "id", "type", "_eq", "\ud800", "")): self.hostile(depth + 1) for _ in range(3)}


def mutate(message: dict[str, Any], chooser: Chooser) -> Any:
    """``message`` with one to three random changes: a key dropped, added or its value replaced by a hostile one
    (also inside ``payload``, ``query``, ``data`` and ``filter``); or the whole message wrapped in another."""
    message = json.loads(json.dumps(message))  # a private copy
    for _ in range(chooser.choice((1, 2, 3))):
        target = message
        for inner in ("payload", "query", "data", "filter"):
            if isinstance(target, dict) and isinstance(target.get(inner), dict) and chooser.choice((True, False)):
                target = target[inner]
        keys = sorted(target)
        action = chooser.choice(("drop", "add", "replace", "replace", "wrap"))
        if action == "drop" and keys:
            del target[chooser.choice(keys)]
        elif action == "add":
            target[chooser.choice((*keys, "uid", "id", "type", "extra", "\ud800", ""))] = chooser.hostile()
        elif action == "replace" and keys:
            target[chooser.choice(keys)] = chooser.hostile()
        elif action == "wrap":
            return chooser.choice(([message], {"type": "ping", "uid": message}, {"message": message}))
    return message


@st.composite
def mutated(draw: Any, messages: list[dict[str, Any]]) -> Frame:
    return text_frame(mutate(draw(st.sampled_from(messages)), DrawChooser(draw)))


def oversized_frame(size: int) -> Frame:
    return Frame(text='{"type":"ping","pad":"' + "x" * size + '"}')


def hostile_frames(messages: list[dict[str, Any]], oversized: int) -> st.SearchStrategy[Frame]:
    """Frames for one socket: mostly mutated valid messages, then arbitrary JSON, broken text, deep nesting, bytes
    and one frame over the size limit (``oversized`` characters)."""
    return st.one_of(
        st.sampled_from(messages).map(text_frame),
        mutated(messages),
        mutated(messages),
        mutated(messages),
        json_values.map(text_frame),
        pick(BROKEN_TEXTS).map(lambda text: Frame(text=text)),
        st.text(max_size=30).map(lambda text: Frame(text=text)),
        pick(DEEP_TEXTS).map(lambda text: Frame(text=text)),
        st.binary(max_size=64).map(lambda data: Frame(data=data)),
        st.sampled_from(messages).map(lambda m: Frame(data=json.dumps(m).encode())),
        st.just(oversized).map(oversized_frame),
    )


def graphql_subscribe(op: Any, query: Any, variables: Any, name: Any) -> Frame:
    return text_frame(
        {"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables, "operationName": name}}
    )


def graphql_frames(oversized: int) -> st.SearchStrategy[Frame]:
    """graphql-transport-ws frames: the messages above mutated, and subscribes of random documents and variables."""
    subscribes = st.builds(
        graphql_subscribe,
        st.one_of(st.sampled_from(("1", "2", "x")), hostile_values),
        st.one_of(pick(GRAPHQL_DOCUMENTS), st.text(max_size=40), hostile_values),
        pick(GRAPHQL_VARIABLES).map(lambda value: json.loads(json.dumps(value))),
        st.one_of(st.none(), st.sampled_from(("Q", "A", "B", "nope")), hostile_values),
    )
    return st.one_of(hostile_frames(graphql_messages(), oversized), subscribes, subscribes)


# -- the same pools for the live fuzz (seeded, reproducible) -------------------------------------------------------


def seeded_frames(messages: list[dict[str, Any]], seed: int, count: int, oversized: int) -> list[Frame]:
    """``count`` frames from the pools above chosen by ``random.Random(seed)``: the same list on every run. Text
    frames are valid UTF-8 (a real client cannot send a lone surrogate raw; escaped in JSON it is sent often)."""
    rng = random.Random(seed)
    chooser = RandomChooser(rng)
    frames: list[Frame] = []
    for _ in range(count):
        kind = rng.randrange(20)
        if kind < 3:
            frame = text_frame(rng.choice(messages))
        elif kind < 12:
            frame = text_frame(mutate(rng.choice(messages), chooser))
        elif kind == 12:
            frame = text_frame(chooser.hostile())
        elif kind == 13:
            frame = Frame(text=rng.choice(BROKEN_TEXTS))
        elif kind == 14:
            frame = Frame(text=rng.choice(DEEP_TEXTS))
        elif kind == 15:
            frame = Frame(data=rng.randbytes(rng.randrange(65)))
        elif kind == 16:
            frame = Frame(data=json.dumps(rng.choice(messages)).encode())
        elif kind == 17 and rng.random() < 0.2:
            frame = oversized_frame(oversized)
        elif kind == 18:
            frame = graphql_subscribe(
                rng.choice(("1", "2", "x", chooser.hostile())),
                rng.choice((*GRAPHQL_DOCUMENTS, chooser.hostile())),
                rng.choice(GRAPHQL_VARIABLES),
                rng.choice((None, "Q", "nope", chooser.hostile())),
            )
        else:
            frame = text_frame(mutate(rng.choice(messages), chooser))
        frames.append(frame)
    return frames

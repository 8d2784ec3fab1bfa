"""The GraphQL schema, generated from the collection registry: queries, mutations and ``<c>_mutated`` per collection.

Every resolver goes through the same rights, row rules and field rules as the REST socket (``Items``, ``reads``)
and every mutation through the same event path. A field the caller may not read fails validation
(``graphql.readable``); one that becomes unreadable while a subscription runs resolves to ``null``.
"""

# No "from __future__ import annotations": strawberry reads the resolvers' annotations, which name local types.

import asyncio
import datetime
import decimal
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import make_dataclass
from enum import Enum
from typing import Annotated, Any, cast

import strawberry
from asgiref.sync import sync_to_async
from django.db import models
from graphql import GraphQLError, GraphQLResolveInfo
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info
from strawberry_django.fields.types import field_type_map

from likha_realtime.access.collections import Collection, registry
from likha_realtime.access.items import Items
from likha_realtime.access.principal import Principal
from likha_realtime.access.subscriptions import Subscription, plan_for, removed, replan, with_plan
from likha_realtime.backpressure import Backlog, close_slow_reader, text_size
from likha_realtime.events.fanout import get_dispatcher
from likha_realtime.graphql.errors import RealtimeSchema
from likha_realtime.graphql.fastlane import Operation, operation_of, projection
from likha_realtime.graphql.introspection import IntrospectionRights
from likha_realtime.graphql.limits import DocumentLimits
from likha_realtime.graphql.readable import ReadableFields
from realtime_auth.wire import RealtimeError


@strawberry.enum(name="EventEnum")
class EventEnum(Enum):
    create = "create"
    update = "update"
    delete = "delete"


@strawberry.enum(name="MutatedEventEnum")
class MutatedEventEnum(Enum):
    """``<c>_mutated.event``: an event, or ``resync`` (key and data null): events may have been missed, re-read."""

    create = "create"
    update = "update"
    delete = "delete"
    resync = "resync"


def graphql_error(error: RealtimeError) -> GraphQLError:
    return GraphQLError(error.message, extensions={"code": str(error.code)})


_SCALARS = (bool, int, float, str, decimal.Decimal, datetime.date, datetime.datetime, datetime.time, uuid.UUID)


def _scalar(field: models.Field) -> Any:
    """The GraphQL type of a column, from strawberry-graphql-django's map of Django fields; keys are ``ID``."""
    if field.primary_key or (field.is_relation and field.many_to_one):
        return strawberry.ID  # rows carry the related key, not the related object
    for klass in type(field).__mro__:
        mapped = field_type_map.get(klass)
        if mapped in _SCALARS or mapped is JSON:
            return mapped
    return str  # files and other structured values travel as their stored text


def _column(collection: Collection, name: str) -> "models.Field[Any, Any]":
    # A collection's fields are the model's concrete fields (checked at registration), never reverse relations.
    return cast("models.Field[Any, Any]", collection.model._meta.get_field(name))


def _output_type(collection: Collection) -> type:
    fields = [(name, _scalar(_column(collection, name)) | None, None) for name in collection.fields]
    cls = make_dataclass(collection.name, [(n, t, strawberry.field(default=d)) for n, t, d in fields])
    return strawberry.type(cls, name=collection.name)


def _row_object(output: type, collection: Collection, row: dict[str, Any] | None) -> Any:
    if row is None:
        return None
    values = {name: row.get(name) for name in collection.fields}
    for name, value in values.items():
        if value is not None and collection.model._meta.get_field(name).is_relation:
            values[name] = str(value)
    values[collection.pk_name] = str(row[collection.pk_name]) if collection.pk_name in row else None
    return output(**values)


def principal_of(info: Info) -> Principal:
    """The principal of the socket (kept current by its consumer), or of the HTTP request's user."""
    socket = info.context.get("ws") if isinstance(info.context, dict) else None
    if socket is not None:
        principal: Principal = socket.principal
        return principal
    request = info.context["request"] if isinstance(info.context, dict) else info.context.request
    from_request: Principal = request.likha_principal  # set by http.graphql.GraphQLView
    return from_request


def _run(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except RealtimeError as error:
        raise graphql_error(error) from error


class _Resolvers:
    """Query, mutation and subscription resolvers of one collection."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.output = _output_type(collection)
        self.mutated = strawberry.type(
            make_dataclass(
                f"{collection.name}_mutated",
                [("key", strawberry.ID | None), ("event", MutatedEventEnum), ("data", self.output | None)],
            ),
            name=f"{collection.name}_mutated",
        )

    def obj(self, row: dict[str, Any] | None) -> Any:
        return _row_object(self.output, self.collection, row)

    def items(self, info: Info, action: str, query: dict[str, Any] | None = None) -> Items:
        return Items(principal_of(info), self.collection.name, action, query)

    def query_fields(self) -> dict[str, Any]:
        name, output, this = self.collection.name, self.output, self

        async def listing(
            info: Info,
            filter: JSON | None = None,
            sort: list[str] | None = None,
            limit: int | None = None,
            offset: int | None = None,
        ) -> list[output]:  # type: ignore[valid-type]  # strawberry reads this annotation: a class built at runtime
            query = {
                k: v
                for k, v in {"filter": filter, "sort": sort, "limit": limit, "offset": offset}.items()
                if v is not None
            }
            rows = await sync_to_async(_run)(lambda: this.items(info, "read", query or None).read_many())
            return [this.obj(row) for row in rows]

        async def by_id(info: Info, id: strawberry.ID) -> output | None:  # type: ignore[valid-type]  # strawberry reads this annotation: a class built at runtime
            return this.obj(await sync_to_async(_run)(lambda: this.items(info, "read").read_one(id)))  # type: ignore[no-any-return]  # an instance of the output class built at runtime

        return {name: strawberry.field(resolver=listing), f"{name}_by_id": strawberry.field(resolver=by_id)}

    def mutation_fields(self) -> dict[str, Any]:
        name, output, this = self.collection.name, self.output, self

        async def create(info: Info, data: JSON) -> output | None:  # type: ignore[valid-type]  # strawberry reads this annotation: a class built at runtime
            return this.obj(await sync_to_async(_run)(lambda: this.items(info, "create").create(data)))  # type: ignore[no-any-return]  # an instance of the output class built at runtime

        async def update(info: Info, id: strawberry.ID, data: JSON) -> output | None:  # type: ignore[valid-type]  # strawberry reads this annotation: a class built at runtime
            return this.obj(  # type: ignore[no-any-return]  # an instance of the output class built at runtime
                await sync_to_async(_run)(lambda: this.items(info, "update").update([id], data, many=False))
            )

        async def delete(info: Info, id: strawberry.ID) -> strawberry.ID | None:
            keys = await sync_to_async(_run)(lambda: this.items(info, "delete").delete([id]))
            return strawberry.ID(str(keys[0])) if keys else None

        return {
            f"create_{name}_item": strawberry.mutation(resolver=create),
            f"update_{name}_item": strawberry.mutation(resolver=update),
            f"delete_{name}_item": strawberry.mutation(resolver=delete),
        }

    def subscription_fields(self) -> dict[str, Any]:
        this = self

        async def mutated(
            info: Info, only: Annotated[EventEnum | None, strawberry.argument(name="event")] = None
        ) -> AsyncGenerator[this.mutated, None]:  # type: ignore[name-defined]  # the collection's event type, built at runtime
            # Started before the stream is returned: a subscription the caller may not read is refused with an
            # ``error`` message (graphql-transport-ws), like one that new rights end later.
            listener = Listener(this.collection.name, _socket_of(info), only.value if only else None)
            await listener.start()
            listener.fast = fast_lane(info, this)
            return this.events(listener)

        return {f"{self.collection.name}_mutated": strawberry.subscription(resolver=mutated)}

    async def events(self, listener: "Listener") -> AsyncGenerator[Any, None]:
        taken = False
        try:
            while True:
                if taken:  # strawberry asks for more only once what the last entry yielded is sent
                    listener.in_flight -= 1
                subscription, action, payload, size = await listener.queue.get()
                taken = True
                listener.held.remove(size)
                if action == "resync":  # PROTOCOL §8: the client re-reads (rights may have been re-read since)
                    if listener.subscription is not None:
                        yield self.mutated(key=None, event=MutatedEventEnum.resync, data=None)
                    continue
                for item in payload:
                    if subscription is not listener.subscription:
                        break  # read under rights the socket no longer has (or the subscription ended)
                    if action == "delete":
                        yield self.mutated(key=strawberry.ID(str(item)), event=MutatedEventEnum(action), data=None)
                    else:
                        key = strawberry.ID(str(item[self.collection.pk_name]))
                        yield self.mutated(key=key, event=MutatedEventEnum(action), data=self.obj(item))
                if listener.ended:
                    return
        finally:
            listener.stop()


def fast_lane(info: Info, resolvers: _Resolvers) -> Operation | None:
    """The operation's fast lane (``graphql.fastlane``) when its selection is plain and it runs on
    graphql-transport-ws; ``None`` otherwise (every event through strawberry)."""
    plain = projection(info._raw_info)
    if plain is None:
        return None
    handler, operation = operation_of(_socket_of(info), asyncio.current_task())
    if operation is None:
        return None
    return Operation(handler, operation, plain, resolvers.obj, resolvers.collection.pk_name)


def _socket_of(info: Info) -> Any:
    socket = info.context.get("ws") if isinstance(info.context, dict) else None
    if socket is None:  # only the GraphQL socket serves subscriptions (http.graphql refuses them)
        raise GraphQLError("Subscriptions are served on the GraphQL socket.", extensions={"code": "INVALID_PAYLOAD"})
    return socket


_ENDED = (None, "", (), 0)  # the queue entry that wakes an ended listener's generator


class Listener:
    """One GraphQL subscription as a subscriber of the event fan-out (same batching and rights as REST).

    Its socket keeps it under the socket's current rights: ``suspend()`` while they are re-read, then
    ``resume()`` with the subscription re-planned under them, or ``end()`` when they cannot read it. Events read
    under a plan that is no longer the listener's are dropped where they are taken from the queue.
    """

    def __init__(self, collection: str, socket: Any, event: str | None) -> None:
        self.collection = collection
        self.socket = socket
        self.connection = socket  # its deliveries take the socket's turns (events.scheduler)
        self.event = event
        self.queue: asyncio.Queue[tuple[Subscription | None, str, Any, int]] = asyncio.Queue(maxsize=10_000)
        # Bytes of the events queued by all of the socket's subscriptions (their JSON): SEND_BUFFER_MAX_BYTES bounds
        # them, like the socket's outgoing buffer (likha_realtime.backpressure); the queue's size is a backstop.
        self.held: Backlog = getattr(socket, "held_events", None) or Backlog()
        self.subscription: Subscription | None = None
        self.task: asyncio.Task[Any] | None = None  # the operation's task, which runs this generator
        self.ended = False
        self.fast: Operation | None = None  # events written at once (``graphql.fastlane``) while nothing is queued
        self.in_flight = 0  # queue entries not yet sent by strawberry: the fast lane waits until there are none
        self.since = time.monotonic()  # events this process received before the subscription began are not its

    def base(self) -> Subscription:
        return Subscription(None, self.collection, {"fields": ["*"]}, self.event, None, None, since=self.since)

    def plan(self, principal: Principal) -> Subscription:
        """The subscription under ``principal``'s rights (sync); ``plan`` is None when they cannot read it."""
        return replan(self.base(), principal)

    async def start(self) -> None:
        principal = self.socket.principal

        def first_plan() -> Subscription:
            return with_plan(self.base(), plan_for(principal, self.collection, {"fields": ["*"]}))

        self.subscription = await sync_to_async(_run)(first_plan)
        self.task = asyncio.current_task()
        self.socket.listen(self)
        if self.socket.principal is not principal:  # the rights changed while planning: plan again under them
            again = await sync_to_async(self.plan)(self.socket.principal)
            if again.plan is None:
                self.stop()
                raise graphql_error(removed())
            self.resume(again)
        await get_dispatcher().add(self.collection, self)

    def stop(self) -> None:
        self.ended = True
        self.subscription = None
        while not self.queue.empty():  # never to be sent: the socket's held bytes no longer count them
            self.held.remove(self.queue.get_nowait()[3])
        get_dispatcher().discard(self.collection, self)
        self.socket.unlisten(self)

    def suspend(self) -> None:
        if self.subscription is not None:
            self.subscription = with_plan(self.subscription, None)

    def resume(self, subscription: Subscription) -> None:
        if not self.ended:
            self.subscription = subscription

    def end(self) -> None:
        """Stop delivering and let the generator return (the socket has told the client why)."""
        self.ended = True
        self.subscription = None
        while not self.queue.empty():  # what is queued was read under the old rights
            self.held.remove(self.queue.get_nowait()[3])
        self.queue.put_nowait(_ENDED)  # a sentinel: no subscription, no items

    def subscriptions_for(self, collection: str) -> list[Subscription]:
        return [self.subscription] if self.subscription is not None and collection == self.collection else []

    async def receive_event(self, subscription: Subscription, action: str, payload: Any, data_json: str) -> None:
        """Queue the event for the generator; a socket whose subscriptions hold too much is closed 4429 instead."""
        if self.ended:
            return
        size = text_size(data_json)
        if self.queue.full() or not self.held.add(size):
            waiting = self.held.size + size
            await close_slow_reader(self.socket, "subscription events not yet sent", waiting, self.held.limit)
            return
        self.queue.put_nowait((subscription, action, payload, size))
        self.in_flight += 1

    def receive_event_now(
        self, subscription: Subscription, action: str, payload: Any, data_json: str, read: Any
    ) -> bool | None:
        """The event's ``next`` messages written at once (``graphql.fastlane``): ``True`` when sent, ``False`` when
        dropped (no longer this listener's plan, or its operation ended), ``None`` when strawberry must send them
        (not a plain selection, an earlier entry still to be sent, no direct writes)."""
        fast = self.fast
        if self.ended or subscription is not self.subscription:
            return False
        if fast is None or self.in_flight or not self.socket.sends_now or self.socket._auth_lock.locked():
            return None  # strawberry sends it, in order (and after a rights reload in progress has replanned)
        if not fast.running:
            return False
        event = MutatedEventEnum(action)
        texts = []
        for index, item in enumerate(payload):
            key = (fast.projection.signature, index)
            text = read.cache.get(key)
            if text is None:
                try:
                    text = read.cache[key] = fast.payload_json(action, item, event)
                except Exception:  # a value its scalar refuses (an Int over 32 bits): strawberry's error answer
                    return None
            texts.append(text)
        for text in texts:
            self.socket.send_text_now(fast.frame(text), read.prepared)
        return True

    async def receive_resync(self, subscription: Subscription) -> None:
        """The fan-out dropped events for this subscription (its backlog overflowed): the same ``resync`` ``next``."""
        await self.resync(self.collection)

    async def resync(self, collection: str) -> int:
        """Events may have been missed: a ``next`` with ``event: resync`` (PROTOCOL §8), in order with the events."""
        if self.subscription is None or collection != self.collection:
            return 0
        try:
            self.queue.put_nowait((self.subscription, "resync", (), 0))
        except asyncio.QueueFull:  # this subscription is 10,000 events behind: it has not read what it has
            return 0
        self.in_flight += 1
        return 1


class SubscriptionValues(SchemaExtension):
    """Resolves a subscription's root field to the value its generator yielded.

    strawberry 0.341.2 resolves that value with ``lambda event, *_, **__: event`` (``from_field`` in
    ``strawberry/schema/schema_converter.py``), which raises "got multiple values for argument 'event'" when the
    field has an argument named ``event``, as ours have (``<c>_mutated(event: ...)``, fixed by PROTOCOL §8). This
    public resolve hook answers that field itself; tests/likha_realtime/graphql/test_schema_contract.py fails once
    strawberry no longer needs it.
    """

    def resolve(self, _next: Callable[..., Any], root: Any, info: GraphQLResolveInfo, *args: Any, **kwargs: Any) -> Any:
        if info.parent_type is info.schema.subscription_type:
            return root  # graphql-core executes each yielded value as the root of the subscription field
        return _next(root, info, *args, **kwargs)


def build_schema() -> strawberry.Schema | None:
    """A schema over every registered collection (``None`` when none is registered)."""
    resolvers = [_Resolvers(collection) for collection in registry]
    if not resolvers:
        return None
    query: dict[str, Any] = {}
    mutation: dict[str, Any] = {}
    subscription: dict[str, Any] = {}
    for r in resolvers:
        query.update(r.query_fields())
        mutation.update(r.mutation_fields())
        subscription.update(r.subscription_fields())
    return RealtimeSchema(
        query=strawberry.type(type("Query", (), query)),
        mutation=strawberry.type(type("Mutation", (), mutation)),
        subscription=strawberry.type(type("Subscription", (), subscription)),
        extensions=[SubscriptionValues, IntrospectionRights, DocumentLimits, ReadableFields],
        config=StrawberryConfig(auto_camel_case=False),  # field names as in the REST socket: snake_case
    )


_schema: dict[str, strawberry.Schema | None] = {}


def get_schema() -> strawberry.Schema | None:
    """The schema of the registry as it is at first use (built once per process)."""
    if "schema" not in _schema:
        _schema["schema"] = build_schema()
    return _schema["schema"]

"""An update that changed only fields a subscriber neither sees nor tests sends it nothing (PROTOCOL §5 [ours]).

Each "nothing" is proven by order, not by waiting: a later write that the subscriber does see must be the next frame.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from erp_demo.models import Customer, Product, SalesOrder, User
from likha_realtime.access.changes import changed_fields, track_changes
from likha_realtime.events import capture
from likha_realtime.events.model import Event
from realtime_auth import tokens
from tests.likha_realtime.graphql.support import joined, post, run, socket_as
from tests.likha_realtime.support import FRAME_WAIT, Roles, ask, event, next_frame, open_socket, run_db

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]


def finance_token() -> str:
    finance = User.objects.create_user("finance@example.com", "pw")
    finance.groups.set(Group.objects.filter(name="Editors"))
    finance.user_permissions.set(Permission.objects.filter(codename="change_customer"))
    return tokens.issue_pair(finance).access


def make_customer() -> int:
    return Customer.objects.create(name="Acme", email="acme@example.com", credit_limit=Decimal("100.00")).pk


async def items_update(socket: Any, collection: str, key: int, data: dict[str, Any]) -> None:
    reply = await ask(
        socket, {"type": "items", "action": "update", "collection": collection, "id": key, "data": data, "uid": "w"}
    )
    assert reply["type"] == "items" and "status" not in reply, reply


async def test_a_change_of_a_hidden_field_only_reaches_those_who_see_it(roles: Roles) -> None:
    key = await run_db(make_customer)
    editor = await open_socket(roles.path("editor"))
    finance = await open_socket(f"/websockets?access_token={await run_db(finance_token)}")
    admin = await open_socket(roles.path("admin"))
    for socket in (editor, finance):
        await ask(socket, {"type": "subscribe", "collection": "customers", "query": {"fields": ["*"]}, "uid": "c"})

    # Each write's frame is awaited before the next write: a frame carries the row as read when it is sent, so a
    # write that follows too soon could show in an earlier write's frame.
    await items_update(admin, "customers", key, {"credit_limit": "2500.00"})
    seen_by_finance = [await next_frame(finance)]
    await items_update(admin, "customers", key, {"name": "Acme Ltd"})
    seen_by_finance.append(await next_frame(finance))

    assert [frame["data"][0]["credit_limit"] for frame in seen_by_finance] == ["2500.00", "2500.00"]
    assert [frame["data"][0]["name"] for frame in seen_by_finance] == ["Acme", "Acme Ltd"]
    frame = await next_frame(editor)  # the credit limit's change never came: the name's is the first
    assert frame == event(
        "update",
        [{"id": key, "name": "Acme Ltd", "email": "acme@example.com", "created": frame["data"][0]["created"]}],
        uid="c",
    )
    for socket in (editor, finance, admin):
        await socket.disconnect()


async def test_one_write_of_several_rows_announces_only_the_rows_whose_seen_fields_changed(roles: Roles) -> None:
    # Hostile review F2: rows 1 and 2 in one update; row 1 changes only its credit limit, row 2 its name too.
    def two_customers() -> tuple[int, int]:
        first = make_customer()
        return first, Customer.objects.create(name="Beta", email="beta@example.com").pk

    first, second = await run_db(two_customers)
    editor = await open_socket(roles.path("editor"))
    finance = await open_socket(f"/websockets?access_token={await run_db(finance_token)}")
    for socket in (editor, finance):
        query = {"fields": ["id", "name"]}
        await ask(socket, {"type": "subscribe", "collection": "customers", "query": query, "uid": "c"})
        await ask(socket, {"type": "subscribe", "collection": "customers", "item": first, "uid": "one"})
    admin = await open_socket(roles.path("admin"))
    message = {"type": "items", "action": "update", "collection": "customers", "ids": [first, second], "uid": "w"}
    reply = await ask(admin, {**message, "data": {"name": "Acme", "credit_limit": "7.00"}})  # row 1: "Acme" already
    assert reply["type"] == "items" and "status" not in reply, reply
    # Finance: "c" shows no credit limit either, so it hears row 2 only; "one" shows it and hears row 1. Both frames
    # are awaited before the fence is written: a frame carries the row as read when it is sent.
    assert await next_frame(finance) == event("update", [{"id": second, "name": "Acme"}], uid="c")
    frame = await next_frame(finance)
    assert (frame["uid"], frame["data"]["credit_limit"], frame["data"]["name"]) == ("one", "7.00", "Acme")
    await items_update(admin, "customers", first, {"name": "Acme 2"})  # the fence: every subscription sees it

    # The editor reads no credit limit: of the first write it hears row 2 only (its name changed), never row 1.
    assert await next_frame(editor) == event("update", [{"id": second, "name": "Acme"}], uid="c")
    assert await next_frame(editor) == event("update", [{"id": first, "name": "Acme 2"}], uid="c")  # the fence
    fence = await next_frame(editor)
    assert (fence["uid"], fence["data"]["name"]) == ("one", "Acme 2")
    assert await next_frame(finance) == event("update", [{"id": first, "name": "Acme 2"}], uid="c")
    frame = await next_frame(finance)
    assert (frame["uid"], frame["data"]["name"]) == ("one", "Acme 2")
    for socket in (editor, finance, admin):
        await socket.disconnect()


async def test_a_hidden_field_that_a_row_rule_tests_still_counts(roles: Roles) -> None:
    # The editor's row rule on sales orders tests status (drafts are hidden): a status change may bring a row into
    # view, so it is announced even to a subscription that does not show the status.
    def make_order() -> int:
        return SalesOrder.objects.create(customer_id=make_customer(), status="draft").pk

    key = await run_db(make_order)
    editor = await open_socket(roles.path("editor"))
    admin = await open_socket(roles.path("admin"))
    await ask(editor, {"type": "subscribe", "collection": "sales_orders", "query": {"fields": ["id"]}, "uid": "o"})

    await items_update(admin, "sales_orders", key, {"status": "confirmed"})

    assert await next_frame(editor) == event("update", [{"id": key}], uid="o")
    for socket in (editor, admin):
        await socket.disconnect()


async def test_a_filter_on_a_field_counts_as_seeing_it(roles: Roles) -> None:
    def make_product() -> int:
        return Product.objects.create(sku="H-1", name="Hinge", price=Decimal("1.00"), stock=5).pk

    key = await run_db(make_product)
    editor = await open_socket(roles.path("editor"))
    admin = await open_socket(roles.path("admin"))
    query = {"fields": ["sku"], "filter": {"stock": {"_gt": 3}}}
    await ask(editor, {"type": "subscribe", "collection": "products", "query": query, "uid": "p"})

    await items_update(admin, "products", key, {"stock": 10})

    assert await next_frame(editor) == event("update", [{"sku": "H-1"}], uid="p")
    for socket in (editor, admin):
        await socket.disconnect()


async def test_a_plain_orm_save_may_have_changed_anything_and_is_announced(roles: Roles) -> None:
    key = await run_db(make_customer)
    editor = await open_socket(roles.path("editor"))
    await ask(editor, {"type": "subscribe", "collection": "customers", "query": {"fields": ["name"]}, "uid": "c"})

    def raise_limit() -> None:
        customer = Customer.objects.get(pk=key)
        customer.credit_limit = Decimal("900.00")
        customer.save()  # no track_changes(), no update_fields: which fields changed is not known

    await run_db(raise_limit)

    assert await next_frame(editor) == event("update", [{"name": "Acme"}], uid="c")
    await editor.disconnect()


# -- writes over HTTP and GraphQL ------------------------------------------------------------------------------

CUSTOMER_UPDATES = "subscription {{ customers_mutated(event: update) {{ key event data {{ {} }} }} }}"


def http_patch(key: int, data: dict[str, Any], admin: str) -> None:
    body = json.dumps(data)
    response = Client().patch(f"/items/customers/{key}", body, "application/json", HTTP_AUTHORIZATION=f"Bearer {admin}")
    assert response.status_code == 200, response.content


def http_patch_keys(key: int, data: dict[str, Any], admin: str) -> None:
    body = json.dumps({"keys": [key], "data": data})
    response = Client().patch("/items/customers", body, "application/json", HTTP_AUTHORIZATION=f"Bearer {admin}")
    assert response.status_code == 200, response.content


def graphql_mutation(key: int, data: dict[str, Any]) -> str:
    literal = ", ".join(f"{name}: {json.dumps(value)}" for name, value in data.items())
    return f"mutation {{ update_customers_item(id: {key}, data: {{{literal}}}) {{ id }} }}"


def graphql_post(key: int, data: dict[str, Any], admin: str) -> None:
    query = "mutation($id: ID!, $d: JSON!) { update_customers_item(id: $id, data: $d) { id } }"
    assert post({"query": query, "variables": {"id": str(key), "d": data}}, "admin") == (
        200,
        {"data": {"update_customers_item": {"id": str(key)}}},
    )


WRITERS = ["http-patch", "http-patch-keys", "graphql-http", "graphql-socket"]


async def test_hidden_updates_over_http_and_graphql_reach_only_those_who_see_the_field(roles: Roles) -> None:
    """Deliver 4 beyond the socket's items: for each writer, a write of the credit limit alone and then a visible
    write of another row. The editor's REST and GraphQL subscriptions hear the second only; finance (who may change
    customers, so read their credit limits) and the admin hear both, in order."""
    first, other = await run_db(lambda: (make_customer(), Customer.objects.create(name="Other", email="o@x.io").pk))
    finance = await run_db(finance_token)
    editor_rest = await open_socket(roles.path("editor"))
    finance_rest = await open_socket(f"/websockets?access_token={finance}")
    admin_rest = await open_socket(roles.path("admin"))
    for socket in (editor_rest, finance_rest, admin_rest):
        query = {"fields": ["id", "name", "credit_limit"] if socket is not editor_rest else ["id", "name"]}
        await ask(
            socket, {"type": "subscribe", "collection": "customers", "query": query, "event": "update", "uid": "c"}
        )
    async with AsyncExitStack() as stack:
        editor_gql = await stack.enter_async_context(socket_as("editor"))
        finance_gql = await stack.enter_async_context(socket_as("finance"))
        admin_gql = await stack.enter_async_context(socket_as("admin"))
        for comm, fields in ((editor_gql, "id name"), (finance_gql, "id name credit_limit")):
            await joined(
                comm,
                {"id": "s", "type": "subscribe", "payload": {"query": CUSTOMER_UPDATES.format(fields)}},
                "customers",
            )

        async def write(writer: str, key: int, data: dict[str, Any]) -> None:
            if writer == "graphql-socket":
                reply = await run(admin_gql, graphql_mutation(key, data))
                assert reply == {
                    "id": "q",
                    "type": "next",
                    "payload": {"data": {"update_customers_item": {"id": str(key)}}},
                }
                return
            how = {"http-patch": http_patch, "http-patch-keys": http_patch_keys, "graphql-http": graphql_post}[writer]
            await run_db(how, key, data, roles.admin)

        for number, writer in enumerate(WRITERS):
            limit, name = f"{2500 + number}.00", f"Other {number}"
            await write(writer, first, {"credit_limit": limit})
            # Those who read the credit limit hear it; their frames are awaited before the next write (a frame
            # carries the row as read when it is sent).
            for socket in (finance_rest, admin_rest):
                frame = await next_frame(socket)
                assert (frame["data"][0]["id"], frame["data"][0]["credit_limit"]) == (first, limit), writer
            mutated = (await finance_gql.receive_json_from(timeout=FRAME_WAIT))["payload"]["data"]["customers_mutated"]
            assert (mutated["key"], mutated["data"]["credit_limit"]) == (str(first), limit), writer

            await write(writer, other, {"name": name})  # the fence: a write of another row everyone sees
            assert await next_frame(editor_rest) == event("update", [{"id": other, "name": name}], uid="c"), writer
            assert await editor_gql.receive_json_from(timeout=FRAME_WAIT) == {
                "id": "s",
                "type": "next",
                "payload": {
                    "data": {
                        "customers_mutated": {
                            "key": str(other),
                            "event": "update",
                            "data": {"id": str(other), "name": name},
                        }
                    }
                },
            }, writer
            for socket in (finance_rest, admin_rest):
                assert (await next_frame(socket))["data"][0]["name"] == name, writer
            mutated = (await finance_gql.receive_json_from(timeout=FRAME_WAIT))["payload"]["data"]["customers_mutated"]
            assert (mutated["key"], mutated["data"]["name"]) == (str(other), name), writer
    for socket in (editor_rest, finance_rest, admin_rest):
        await socket.disconnect()


# -- which fields a save changed -------------------------------------------------------------------------------


def captured(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    events: list[Event] = []
    monkeypatch.setattr(capture, "publish_events", events.extend)
    return events


def test_a_tracked_save_names_the_fields_whose_values_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    events = captured(monkeypatch)
    customer = Customer.objects.get(pk=make_customer())
    track_changes(customer)
    customer.credit_limit = Decimal("7.00")
    customer.name = "Acme"  # the same value: not a change
    customer.save()

    assert (events[-1].collection, events[-1].action, events[-1].keys) == ("customers", "update", (customer.pk,))
    assert events[-1].changed == (frozenset({"credit_limit"}),)


def test_what_a_save_method_changes_besides_counts_too(monkeypatch: pytest.MonkeyPatch) -> None:
    events = captured(monkeypatch)
    product = Product.objects.create(sku="S-1", name="Shelf", price=Decimal("1.00"))
    track_changes(product)
    product.stock = 3
    product.save()  # auto_now sets "updated" during the save

    assert events[-1].changed == ({"stock", "updated"},)


def test_update_fields_name_the_fields_and_narrow_a_tracked_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    events = captured(monkeypatch)
    product = Product.objects.create(sku="S-1", name="Shelf", price=Decimal("1.00"))
    product.stock = 3
    product.save(update_fields=["stock"])
    assert events[-1].changed == (frozenset({"stock"}),)  # untracked: the names the save wrote

    track_changes(product)
    product.name, product.stock = "Other", 4
    product.save(update_fields=["stock"])  # the name is not written
    assert events[-1].changed == (frozenset({"stock"}),)


def test_a_relation_is_named_by_its_field_name_not_its_column() -> None:
    order = SalesOrder.objects.create(customer_id=make_customer())
    other = Customer.objects.create(name="B", email="b@example.com").pk
    order.customer_id = other

    assert changed_fields(order, ["customer_id"]) == frozenset({"customer"})


def test_changes_merge_row_by_row() -> None:
    known = Event("products", "update", (1,), changed=(frozenset({"a"}),))
    other = Event("products", "update", (2,), changed=(frozenset({"b"}),))
    unknown = Event("products", "update", (3,))

    assert known.merge(other).changed == (frozenset({"a"}), frozenset({"b"}))
    assert known.merge(unknown).changed == (frozenset({"a"}), None)
    assert unknown.merge(unknown).changed == ()
    assert unknown.merge(unknown).changes() == (None, None)


def test_changed_fields_travel_in_the_channel_message() -> None:
    sent = Event("products", "update", (1, 2), changed=(frozenset({"stock", "name"}), None))

    message = sent.to_message()
    assert message["changed"] == [["name", "stock"], None]
    assert Event.from_message(message, Product) == sent
    assert Event.from_message(Event("products", "update", (1,)).to_message(), Product).changed == ()
    assert Event.from_message({**message, "changed": [["name"]]}, Product).changed == ()  # misaligned: unknown


def test_publish_can_name_the_changed_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    events = captured(monkeypatch)
    capture.publish("products", "update", [1, 2], fields=["stock"])

    assert events == [Event("products", "update", (1, 2), changed=(frozenset({"stock"}),) * 2)]
    with pytest.raises(Exception, match="nope"):
        capture.publish("products", "update", [1], fields=["nope"])

"""parse_query: defaults, object and SDK string forms, paging, meta, the canonical cache key and every error."""

from __future__ import annotations

from typing import Any

import pytest

from likha_realtime.query import Query, parse_query
from likha_realtime.wire.errors import InvalidQuery
from realtime_auth.wire import ErrorCode


def parse(raw: Any, limit_default: int = 100, limit_max: int = 1000) -> Query:
    return parse_query(raw, limit_default=limit_default, limit_max=limit_max)


def error(raw: Any) -> str:
    with pytest.raises(InvalidQuery) as caught:
        parse(raw)
    assert caught.value.code == ErrorCode.INVALID_QUERY
    return caught.value.message


def test_no_query_gives_every_field_no_filter_and_the_default_limit() -> None:
    assert parse(None, limit_default=25) == Query(
        fields=("*",), filter=None, sort=(), limit=25, offset=0, meta=frozenset()
    )


def test_an_empty_object_gives_the_same_defaults() -> None:
    assert parse({}, limit_default=25) == Query(limit=25)


def test_the_object_form_is_read_as_given() -> None:
    query = parse(
        {
            "fields": ["id", "name", "customer.name", "customer.*"],
            "filter": {"status": {"_eq": "active"}},
            "sort": ["-price", "name"],
            "limit": 10,
            "offset": 20,
            "meta": ["total_count"],
        }
    )
    assert query == Query(
        fields=("id", "name", "customer.name", "customer.*"),
        filter={"status": {"_eq": "active"}},
        sort=("-price", "name"),
        limit=10,
        offset=20,
        meta=frozenset({"total_count"}),
    )


def test_the_string_forms_that_sdks_send_give_the_same_query_as_the_object_form() -> None:
    strings = parse(
        {
            "fields": "id, name,customer.name",
            "filter": '{"status": {"_eq": "active"}}',
            "sort": "-price,name",
            "limit": "10",
            "offset": "20",
            "meta": "total_count,filter_count",
        }
    )
    objects = parse(
        {
            "fields": ["id", "name", "customer.name"],
            "filter": {"status": {"_eq": "active"}},
            "sort": ["-price", "name"],
            "limit": 10,
            "offset": 20,
            "meta": ["filter_count", "total_count"],
        }
    )
    assert strings == objects
    assert strings.cache_key() == objects.cache_key()


def test_repeated_fields_are_kept_once_in_their_first_order() -> None:
    assert parse({"fields": "name,id,name"}).fields == ("name", "id")


def test_an_empty_sort_string_means_no_sort() -> None:
    assert parse({"sort": ""}).sort == ()


def test_an_empty_filter_object_or_json_text_means_no_filter() -> None:
    assert parse({"filter": {}}).filter is None
    assert parse({"filter": "{}"}).filter is None


def test_the_filter_is_a_copy_so_later_changes_to_the_message_do_not_reach_the_query() -> None:
    raw = {"filter": {"name": {"_eq": "a"}}}
    query = parse(raw)
    raw["filter"]["name"]["_eq"] = "b"
    assert query.filter == {"name": {"_eq": "a"}}


def test_limit_minus_one_means_the_maximum() -> None:
    assert parse({"limit": -1}, limit_max=500).limit == 500
    assert parse({"limit": "-1"}, limit_max=500).limit == 500


def test_limit_may_equal_the_maximum() -> None:
    assert parse({"limit": 1000}, limit_max=1000).limit == 1000


def test_page_turns_into_an_offset_of_whole_pages() -> None:
    assert parse({"limit": 10, "page": 3}).offset == 20
    assert parse({"limit": "10", "page": "1"}).offset == 0


def test_page_uses_the_default_limit_when_no_limit_is_given() -> None:
    assert parse({"page": 2}, limit_default=25).offset == 25


def test_meta_star_asks_for_both_counts() -> None:
    assert parse({"meta": "*"}).meta == frozenset({"total_count", "filter_count"})
    assert parse({"meta": ["*", "total_count"]}).meta == frozenset({"total_count", "filter_count"})


def test_the_cache_key_is_canonical_json_with_sorted_keys() -> None:
    query = parse({"fields": "id", "filter": {"b": {"_eq": 1}, "a": {"_eq": "é"}}, "meta": "*", "limit": 5})
    assert query.cache_key() == (
        '{"fields":["id"],"filter":{"a":{"_eq":"é"},"b":{"_eq":1}},"limit":5,'
        '"meta":["filter_count","total_count"],"offset":0,"sort":[]}'
    )


def test_queries_that_differ_only_in_filter_key_order_share_a_cache_key_and_hash() -> None:
    first = parse({"filter": {"a": {"_eq": 1}, "b": {"_eq": 2}}})
    second = parse({"filter": '{"b": {"_eq": 2}, "a": {"_eq": 1}}'})
    assert first.cache_key() == second.cache_key()
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


def test_queries_with_different_limits_have_different_cache_keys() -> None:
    assert parse({"limit": 5}).cache_key() != parse({"limit": 6}).cache_key()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], '"query" must be an object.'),
        ("limit=5", '"query" must be an object.'),
        (
            {"search": "x"},
            'Unknown query parameter "search"; expected one of fields, filter, sort, limit, offset, page, meta.',
        ),
        ({"fields": 5}, '"fields" must be a list of strings or a comma-separated string.'),
        ({"fields": ["id", 5]}, '"fields" must be a list of strings or a comma-separated string.'),
        ({"fields": ""}, '"fields" must name at least one field.'),
        ({"fields": []}, '"fields" must name at least one field.'),
        (
            {"fields": "id,,name"},
            '"fields" must hold field names such as "name" or "customer.name", received "".',
        ),
        (
            {"fields": ["customer..name"]},
            '"fields" must hold field names such as "name" or "customer.name", received "customer..name".',
        ),
        (
            {"fields": "*.name"},
            '"fields" must hold field names such as "name" or "customer.name", received "*.name".',
        ),
        ({"filter": "{not json"}, '"filter" must be a JSON object, received text that is not valid JSON.'),
        (
            {"filter": '{"price": {"_gt": NaN}}'},
            '"filter" must be a JSON object, received text that is not valid JSON.',
        ),
        ({"filter": "[1]"}, '"filter" must be an object (or the JSON text of one).'),
        ({"filter": 5}, '"filter" must be an object (or the JSON text of one).'),
        ({"filter": {"price": {"_gt": float("inf")}}}, '"filter" must hold only JSON values (no NaN or Infinity).'),
        ({"filter": {"price": {"_gt": object()}}}, '"filter" must hold only JSON values (no NaN or Infinity).'),
        ({"sort": 1}, '"sort" must be a list of strings or a comma-separated string.'),
        ({"sort": "--price"}, '"sort" must hold field names, "-" first for descending, received "--price".'),
        ({"sort": ["price", "*"]}, '"sort" must hold field names, "-" first for descending, received "*".'),
        ({"limit": True}, '"limit" must be an integer, received true.'),
        ({"limit": 2.5}, '"limit" must be an integer, received 2.5.'),
        ({"limit": "ten"}, '"limit" must be an integer, received "ten".'),
        ({"limit": " 10"}, '"limit" must be an integer, received " 10".'),
        ({"limit": 0}, '"limit" must be between 1 and 1000 (or -1 for the maximum), received 0.'),
        ({"limit": -2}, '"limit" must be between 1 and 1000 (or -1 for the maximum), received -2.'),
        ({"limit": 1001}, '"limit" must be between 1 and 1000 (or -1 for the maximum), received 1001.'),
        ({"offset": -1}, '"offset" must be between 0 and 2147483647, received -1.'),
        ({"offset": 2**31}, '"offset" must be between 0 and 2147483647, received 2147483648.'),
        ({"offset": False}, '"offset" must be an integer, received false.'),
        ({"offset": "1e3"}, '"offset" must be an integer, received "1e3".'),
        ({"page": 0}, '"page" must be 1 or more, received 0.'),
        ({"page": True}, '"page" must be an integer, received true.'),
        ({"page": 2**30, "limit": 10}, '"page" is too large: 1073741824 pages of 10 go past 2147483647 rows.'),
        ({"offset": 0, "page": 1}, 'Use either "offset" or "page", not both.'),
        ({"meta": "count"}, '"meta" must list "total_count", "filter_count" or "*", received "count".'),
        ({"meta": {"total_count": True}}, '"meta" must be a list of strings or a comma-separated string.'),
    ],
)
def test_an_invalid_query_is_refused_with_a_message_naming_the_key_and_what_it_expects(raw: Any, message: str) -> None:
    assert error(raw) == message


BAD_TEXT = "holds text that no database can take (a NUL character or a lone surrogate)."


@pytest.mark.parametrize(
    "bad",
    [
        {"name": {"_eq": "\ud800"}},
        {"name": {"_eq": "a\x00b"}},
        {"name": {"_in": ["ok", "\udfff"]}},
        {"_or": [{"name": {"_contains": "\x00"}}]},
        {"na\ud800me": {"_eq": "x"}},
        '{"name":{"_eq":"\\ud800"}}',
    ],
    ids=["surrogate", "nul", "surrogate-in-list", "nul-nested", "surrogate-in-key", "surrogate-in-json-text"],
)
def test_text_no_database_can_take_is_an_invalid_query(bad: Any) -> None:
    with pytest.raises(InvalidQuery) as error:
        parse({"filter": bad})
    assert error.value.message == f'"filter" {BAD_TEXT}'


def test_ordinary_unicode_in_a_filter_is_kept() -> None:
    assert parse({"filter": {"name": {"_eq": "Ünïcödé ✓ 𝄞"}}}).filter == {"name": {"_eq": "Ünïcödé ✓ 𝄞"}}

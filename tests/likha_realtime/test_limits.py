"""``likha_realtime.limits``: token buckets per connection and per user, on a clock the test moves."""

from __future__ import annotations

import pytest

from likha_realtime.limits import MessageRate, TokenBucket, TooManyMessages, UserBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_refills_continuously() -> None:
    clock = Clock()
    bucket = TokenBucket(4, 2.0, clock)  # 4 at once, then 2 per second
    for _ in range(4):
        assert bucket.wait_ms(clock()) == 0
        bucket.take()
    assert bucket.wait_ms(clock()) == 500  # one token takes 0.5 s
    clock.now += 0.2
    assert bucket.wait_ms(clock()) == 300
    clock.now += 0.3
    assert bucket.wait_ms(clock()) == 0
    clock.now += 100
    assert bucket.full(clock())
    assert bucket.tokens == 4  # never more than the burst


def test_the_wait_is_at_least_a_millisecond_when_there_is_one() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, 1.0, clock)
    for _ in range(1000):
        bucket.take()
    assert bucket.wait_ms(clock()) == 1
    clock.now += 0.0009  # 0.9 of a token: still not one
    assert bucket.wait_ms(clock()) == 1


def test_a_message_needs_a_token_in_both_buckets_and_takes_none_when_refused() -> None:
    clock = Clock()
    users = UserBuckets(clock)
    first = MessageRate(3, 1.0, 4, users, clock)
    second = MessageRate(3, 1.0, 4, users, clock)
    assert [first.admit("ann") for _ in range(3)] == [0, 0, 0]
    assert first.admit("ann") == 334  # its connection is empty (1/3 s per token)
    assert second.admit("ann") == 0  # the user's fourth
    assert second.admit("ann") == 250  # the user's bucket is empty (1/4 s), though this connection has 2 left
    assert second.admit("bob") == 0  # another user on that connection: its own bucket
    assert second.connection is not None and round(second.connection.tokens) == 1  # the refusal took nothing


def test_the_public_role_has_only_its_connection_bucket() -> None:
    clock = Clock()
    users = UserBuckets(clock)
    rate = MessageRate(2, 1.0, 1, users, clock)
    assert [rate.admit(None) for _ in range(3)] == [0, 0, 500]
    assert users.buckets == {}


def test_unlimited_buckets_never_refuse() -> None:
    clock = Clock()
    rate = MessageRate(None, 1.0, None, UserBuckets(clock), clock)
    assert all(rate.admit("ann") == 0 for _ in range(10_000))


def test_check_raises_requests_exceeded_with_the_wait() -> None:
    clock = Clock()
    rate = MessageRate(1, 2.0, None, UserBuckets(clock), clock)
    rate.check(None)
    with pytest.raises(TooManyMessages) as refused:
        rate.check(None)
    assert (refused.value.code, refused.value.message, refused.value.retry_ms) == (
        "REQUESTS_EXCEEDED",
        "Too many messages, retry after 2000ms.",
        2000,
    )


def test_full_user_buckets_are_forgotten_and_busy_ones_kept() -> None:
    clock = Clock()
    users = UserBuckets(clock)
    users.bucket("busy", 2, 60.0).take()
    users.bucket("idle", 2, 60.0)
    users.prune()
    assert set(users.buckets) == {"busy"}


def test_a_changed_setting_gives_the_user_a_bucket_of_the_new_size() -> None:
    clock = Clock()
    users = UserBuckets(clock)
    old = users.bucket("ann", 2, 1.0)
    assert users.bucket("ann", 2, 1.0) is old
    assert users.bucket("ann", 5, 1.0).points == 5

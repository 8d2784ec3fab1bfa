"""Message rate limits of the sockets (PROTOCOL §4): token buckets per connection and per user, pure and clocked.

A bucket holds up to ``points`` tokens and refills ``points`` every ``duration`` seconds, continuously: a client may
send a burst of ``points`` messages (an SDK subscribing to everything at start-up), then ``points / duration`` per
second. A message passes only when both its connection's bucket and its user's bucket (authenticated users; counted
per server process, over all of the user's connections on the three sockets) hold a token; then it takes one from
each. Otherwise the caller answers ``REQUESTS_EXCEEDED`` with the wait in milliseconds and the message is not run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from typing import ClassVar

from realtime_auth.wire import ErrorCode, RealtimeError

Clock = Callable[[], float]


class TooManyMessages(RealtimeError):
    """Over a message rate limit: the message was not run; the socket stays open."""

    code = ErrorCode.REQUESTS_EXCEEDED

    def __init__(self, retry_ms: int) -> None:
        super().__init__(f"Too many messages, retry after {retry_ms}ms.")
        self.retry_ms = retry_ms


class TokenBucket:
    """``points`` tokens, refilled at ``points / duration`` per second up to ``points``."""

    def __init__(self, points: int, duration: float, clock: Clock = time.monotonic) -> None:
        self.points = points
        self.duration = float(duration)
        self.clock = clock
        self.tokens = float(points)
        self.stamp = clock()

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(float(self.points), self.tokens + (now - self.stamp) * self.points / self.duration)
        self.stamp = max(self.stamp, now)

    def wait_ms(self, now: float) -> int:
        """Milliseconds until a token is there (0: there is one now); refills first."""
        self.refill(now)
        if self.tokens >= 1:
            return 0
        return max(1, math.ceil((1 - self.tokens) * self.duration / self.points * 1000))

    def take(self) -> None:
        self.tokens -= 1

    def full(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= self.points


class UserBuckets:
    """The per-user buckets of one server process. A bucket that is full again is as good as a new one, so full
    buckets are forgotten from time to time (the dict never holds more than the users active recently)."""

    prune_every: ClassVar[int] = 1024

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[Hashable, TokenBucket] = {}
        self._created = 0

    def bucket(self, user: Hashable, points: int, duration: float) -> TokenBucket:
        found = self.buckets.get(user)
        if found is None or found.points != points or found.duration != float(duration):
            found = self.buckets[user] = TokenBucket(points, duration, self.clock)
            self._created += 1
            if self._created % self.prune_every == 0:
                self.prune()
        return found

    def prune(self) -> None:
        now = self.clock()
        for user in [user for user, bucket in self.buckets.items() if bucket.full(now)]:
            del self.buckets[user]


class MessageRate:
    """One connection's message rate limits: its own bucket and, while authenticated, its user's."""

    def __init__(
        self,
        points: int | None,
        duration: float,
        user_points: int | None,
        users: UserBuckets,
        clock: Clock = time.monotonic,
    ) -> None:
        self.clock = clock
        self.duration = float(duration)
        self.user_points = user_points
        self.users = users
        self.connection = TokenBucket(points, duration, clock) if points is not None else None

    def admit(self, user: Hashable | None) -> int:
        """0 when a message from this connection (authenticated as ``user``, ``None`` for the public role) may run
        now, and its tokens are taken; else the milliseconds to wait, and nothing is taken."""
        now = self.clock()
        buckets = [self.connection] if self.connection is not None else []
        if user is not None and self.user_points is not None:
            buckets.append(self.users.bucket(user, self.user_points, self.duration))
        wait = max((bucket.wait_ms(now) for bucket in buckets), default=0)
        if wait:
            return wait
        for bucket in buckets:
            bucket.take()
        return 0

    def check(self, user: Hashable | None) -> None:
        """``admit`` that raises ``TooManyMessages`` instead of returning a wait."""
        wait = self.admit(user)
        if wait:
            raise TooManyMessages(wait)

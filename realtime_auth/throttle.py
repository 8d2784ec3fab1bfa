"""Login throttling (PROTOCOL §4, §9): credential logins counted per client address and per account in the Django
cache, shared by the HTTP views (DRF throttles) and the sockets' ``auth`` / ``connection_init`` logins.

Three counters, each a fixed window of ``LOGIN_THROTTLE_WINDOW`` seconds aligned to the epoch (every process and
every key agrees where a window starts, so counts add up across processes sharing the cache):

- ``LoginAttempts`` — every password or refresh-token login from one client address (each costs a password hash
  or a database write: the bound on what one address can make the server do);
- ``AddressFailures`` — logins from one address that did not succeed (password spraying across accounts);
- ``AccountFailures`` — password logins naming one account that did not succeed. Once over the limit, every login
  of that account is refused, the right password included, until the window ends: otherwise the throttle would
  tell a guesser when a guess is right. The account is the username as ``authenticate()`` would get it, Unicode
  normalised, stripped and case-folded, whether it exists or not (unknown accounts behave exactly like known ones).

Failures are counted *before* the credentials are checked and given back when the login succeeds, so concurrent
attempts (many connections, many processes) cannot all pass the check before the first failure is recorded. Every
count is an atomic ``cache.add`` / ``cache.incr`` (Redis ``SET NX`` / ``INCR``): DRF's own history-list throttles
read and rewrite a list and lose counts under concurrency. DRF's ``SimpleRateThrottle`` is still the base (its
``timer``, ``cache``, ``wait()`` and the views' ``check_throttles`` -> 429 with ``Retry-After``), with our settings,
cache alias and client address instead of the host's ``REST_FRAMEWORK`` ones.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from django.core.cache import BaseCache, caches
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from realtime_auth import usernames
from realtime_auth.conf import auth_settings
from realtime_auth.errors import AuthError, LoginThrottled

logger = logging.getLogger(__name__)

UNKNOWN_ADDRESS = "unknown"  # no client address (a Unix socket, a test client): all such clients share one count
IPV6_PREFIX = 64  # one IPv6 client (a home, an office) holds a whole /64: counting single addresses is no bound
CACHE_ERROR_LOG_INTERVAL = 60.0  # seconds between two log lines about an unreachable cache (per process)

_last_cache_error_logged = -math.inf


# -- who is asking ------------------------------------------------------------------------------------------------


def client_address(remote_addr: str | None, forwarded_for: str | None) -> str:
    """The client's address, as the throttle counts it.

    ``remote_addr`` is the peer of the connection; with ``LOGIN_TRUSTED_PROXIES`` = n > 0, the n-th address from
    the right of ``X-Forwarded-For`` is taken instead (the one the outermost trusted proxy saw; addresses further
    left are the client's own claims). IPv6 addresses count by their /64 network.
    """
    address = remote_addr
    proxies = int(auth_settings.LOGIN_TRUSTED_PROXIES)
    if proxies and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if hops:
            address = hops[-min(proxies, len(hops))]
    return _normalised_address(address)


def _normalised_address(text: str | None) -> str:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def scope_address(scope: Mapping[str, Any]) -> str:
    """The client address of an ASGI connection: the scope's ``client`` and ``X-Forwarded-For`` header."""
    client = scope.get("client")
    remote = str(client[0]) if isinstance(client, list | tuple) and client else None
    return client_address(remote, _header(scope.get("headers") or [], b"x-forwarded-for"))


def _header(headers: Iterable[Any], name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in headers if bytes(key).lower() == name]
    return ",".join(values) if values else None


def request_address(request: Request | Any) -> str:
    """The client address of an HTTP request (``REMOTE_ADDR`` and ``X-Forwarded-For``)."""
    meta = request.META
    return client_address(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))


def account_key(field: str, identifier: str) -> str:
    """The account a password login names, as a digest: the username ``authenticate()`` gets for ``identifier``
    (``email`` resolves to the user's username, so both wire keys count as one account), NFKC-normalised, stripped
    and case-folded (``ADMIN@example.com `` is ``admin@example.com``). The digest keeps what a user typed (sometimes
    a password, in the wrong box) out of the cache and the logs."""
    typed = unicodedata.normalize("NFKC", identifier).strip()  # the lookup of an email ignores case, not spaces
    try:
        username = usernames.username_for(field, typed)
    except ValueError:
        username = typed
    folded = unicodedata.normalize("NFKC", str(username)).strip().casefold()
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()[:40]


# -- the counters ---------------------------------------------------------------------------------------------------


class LoginThrottle(SimpleRateThrottle):
    """One fixed-window counter of logins, by an identity (an address, an account digest).

    A DRF throttle (``allow_request``) for the HTTP views, and ``acquire``/``release`` for the socket path and the
    failure counts. ``timer`` is the clock (epoch seconds; replace it to test windows without waiting).
    """

    limit_setting: ClassVar[str]
    cache_format = "realtime_auth:login:%(scope)s:%(ident)s:%(window)d"
    timer: Callable[[], float] = time.time

    def __init__(self) -> None:  # not DRF's: the rate comes from our settings, never REST_FRAMEWORK's
        limit = getattr(auth_settings, self.limit_setting)
        self.num_requests: int | None = None if limit is None else int(limit)
        self.duration = float(auth_settings.LOGIN_THROTTLE_WINDOW)
        self.rate = None if limit is None else f"{limit}/{self.duration:g}s"
        self.now = 0.0
        self.key: str | None = None
        self.cache = caches[auth_settings.LOGIN_THROTTLE_CACHE]  # DRF's is the default cache, bound at import

    # -- DRF's interface (HTTP) ---------------------------------------------------------------------------------

    def get_ident(self, request: Request) -> str:
        return request_address(request)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.get_ident(request)  # the identity; ``acquire`` makes the key of the current window

    def allow_request(self, request: Request, view: Any) -> bool:
        ident = self.get_cache_key(request, view)
        return ident is None or self.acquire(ident)

    def wait(self) -> float:
        """Seconds until the current window ends (then the count starts again from zero)."""
        return self.window_end() - self.now

    # -- counting -----------------------------------------------------------------------------------------------

    def window_end(self) -> float:
        return (math.floor(self.now / self.duration) + 1) * self.duration

    def acquire(self, ident: str) -> bool:
        """Count one more for ``ident`` in the current window; ``False`` when that is over the limit."""
        self.now = self.timer()
        if self.num_requests is None:
            return True
        window = math.floor(self.now / self.duration)
        self.key = self.cache_format % {"scope": self.scope or "", "ident": ident, "window": window}
        count = _increment(self.cache, self.key, math.ceil(self.window_end() - self.now) + 1)
        if count is None:  # the cache is unreachable: logins go on unthrottled (logged) rather than all refused
            return True
        if count == self.num_requests + 1:
            logger.warning(
                "login throttle: %s limit (%d in %gs) reached for %s", self.scope, self.num_requests, self.duration,
                ident if self.scope != AccountFailures.scope else f"account #{ident[:12]}",
            )  # fmt: skip
        return count <= self.num_requests

    def release(self) -> None:
        """Give back the count ``acquire`` took (a login that succeeded is no failure)."""
        if self.key is not None:
            try:
                self.cache.decr(self.key)
            except ValueError:  # the window's key expired meanwhile: nothing to give back
                pass
            except Exception as error:
                _cache_error(error)
            self.key = None


class LoginAttempts(LoginThrottle):
    """Every password or refresh-token login from one client address (``throttle_classes`` of the HTTP views)."""

    scope = "address"
    limit_setting = "LOGIN_ATTEMPTS_PER_ADDRESS"


class AddressFailures(LoginThrottle):
    """Logins from one client address that did not succeed."""

    scope = "address_failures"
    limit_setting = "LOGIN_FAILURES_PER_ADDRESS"


class AccountFailures(LoginThrottle):
    """Password logins naming one account that did not succeed."""

    scope = "account"
    limit_setting = "LOGIN_FAILURES_PER_ACCOUNT"


def _increment(cache: BaseCache, key: str, timeout: int) -> int | None:
    """``key`` + 1, created with ``timeout`` when missing (atomic on Redis and LocMem); ``None`` if the cache fails."""
    try:
        for _ in range(3):
            try:
                return int(cache.incr(key))  # the common case first: a count that exists (Redis: EXISTS, INCR)
            except ValueError:  # none yet (or it expired just now): create it, unless another process just did
                if cache.add(key, 1, timeout):
                    return 1
    except Exception as error:
        _cache_error(error)
    return None


def _cache_error(error: Exception) -> None:
    global _last_cache_error_logged
    now = time.monotonic()
    if now - _last_cache_error_logged >= CACHE_ERROR_LOG_INTERVAL:
        _last_cache_error_logged = now
        logger.error(
            "login throttle: the cache %r failed (%s): logins are not throttled while it fails",
            auth_settings.LOGIN_THROTTLE_CACHE,
            type(error).__name__,
        )


# -- one login ------------------------------------------------------------------------------------------------------


@contextmanager
def login_attempt(address: str, account: str | None = None, *, counted: bool = False) -> Iterator[None]:
    """Guard one credential login from ``address`` (naming ``account``, a digest from ``account_key``, for password
    logins): ``LoginThrottled`` before any credential is checked when a limit is reached; an ``AuthError`` in the
    block counts as a failure; a block that ends normally gives its failure counts back.

    ``counted``: the attempt was already counted per address (DRF's ``check_throttles`` of the HTTP views).
    The counters are taken in order and the first refusal stops: an address over its limit adds nothing to an
    account's count (it cannot lock others out beyond its own limit).
    """
    taken: list[LoginThrottle] = []
    steps: list[tuple[LoginThrottle, str]] = [] if counted else [(LoginAttempts(), address)]
    steps.append((AddressFailures(), address))
    if account is not None:
        steps.append((AccountFailures(), account))
    for counter, ident in steps:
        if not counter.acquire(ident):
            raise LoginThrottled(counter.wait())
        if not isinstance(counter, LoginAttempts):
            taken.append(counter)
    try:
        yield
    except AuthError:
        raise  # a failure: it stays counted
    for counter in taken:
        counter.release()

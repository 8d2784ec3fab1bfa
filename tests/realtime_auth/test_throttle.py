"""Login throttling over HTTP (PROTOCOL §9): /auth/login and /auth/refresh counted per client address and per
account in the Django cache; 429 ``REQUESTS_EXCEEDED`` with ``Retry-After``; windows on an injected clock."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.conf import settings
from django.core import checks
from django.test import Client, override_settings

from erp_demo.models import User
from realtime_auth import throttle
from realtime_auth.checks import check_throttle_cache, check_throttle_cache_shared
from realtime_auth.errors import LoginThrottled
from tests.realtime_auth.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, EDITOR_EMAIL, EDITOR_PASSWORD

pytestmark = pytest.mark.django_db

WINDOW = 900
START = 1_000 * WINDOW + 100  # 100 s into a window: 800 s are left of it


class Clock:
    """The throttle's clock (an instance: a class attribute holding it is not bound as a method)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(START)
    monkeypatch.setattr(throttle.LoginThrottle, "timer", fake)
    return fake


def limits(**values: Any) -> override_settings:
    return override_settings(LIKHA_REALTIME={**settings.LIKHA_REALTIME, **values})


@pytest.fixture
def accounts(admin: User, editor: User) -> None:
    """The admin and the editor (conftest's users)."""


def post(path: str, body: Any, address: str = "127.0.0.1", **meta: str) -> tuple[int, Any, str | None]:
    response = Client(REMOTE_ADDR=address).post(path, body, content_type="application/json", **meta)
    return response.status_code, (response.json() if response.content else None), response.get("Retry-After")


def login(email: str, password: str, address: str = "127.0.0.1", **meta: str) -> tuple[int, Any, str | None]:
    return post("/auth/login", {"email": email, "password": password}, address, **meta)


def throttled(ms: int) -> dict[str, Any]:
    message = f"Too many login attempts, retry after {ms}ms."
    return {"errors": [{"message": message, "extensions": {"code": "REQUESTS_EXCEEDED"}}]}


INVALID = {"errors": [{"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}]}


def statuses(results: list[tuple[int, Any, str | None]]) -> list[int]:
    return [status for status, _, _ in results]


# -- per account ---------------------------------------------------------------------------------------------------


def test_an_account_is_refused_429_after_its_failures_from_any_addresses(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_FAILURES_PER_ACCOUNT=3):
        wrong = [login(ADMIN_EMAIL, "wrong", f"10.0.0.{n}") for n in range(1, 4)]
        assert wrong == [(401, INVALID, None)] * 3
        assert login(ADMIN_EMAIL, "wrong", "10.0.0.4") == (429, throttled(800_000), "800")
        # The right password too, from yet another address: the throttle tells a guesser nothing.
        assert login(ADMIN_EMAIL, ADMIN_PASSWORD, "10.0.0.5") == (429, throttled(800_000), "800")
        # Another account is not affected.
        assert login(EDITOR_EMAIL, EDITOR_PASSWORD, "10.0.0.4")[0] == 200


def test_the_reported_case_with_the_defaults_fifteen_wrong_passwords_then_the_right_one(
    accounts: None, clock: Clock
) -> None:
    """Issue 11: 15 wrong passwords for the admin were 15 x 401, then 200. Now the 11th is refused, and so is the
    right password after them."""
    results = [login(ADMIN_EMAIL, f"guess-{n}") for n in range(15)] + [login(ADMIN_EMAIL, ADMIN_PASSWORD)]
    assert results == [(401, INVALID, None)] * 10 + [(429, throttled(800_000), "800")] * 6


def test_the_lock_ends_with_its_window(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_FAILURES_PER_ACCOUNT=2):
        assert statuses([login(ADMIN_EMAIL, "wrong") for _ in range(3)]) == [401, 401, 429]
        clock.now = START + 299.5
        assert login(ADMIN_EMAIL, ADMIN_PASSWORD) == (429, throttled(500_500), "501")
        clock.now = START + 799.5
        assert login(ADMIN_EMAIL, ADMIN_PASSWORD) == (429, throttled(500), "1")
        clock.now = START + 800  # the next window
        assert login(ADMIN_EMAIL, ADMIN_PASSWORD)[0] == 200


@pytest.mark.parametrize(
    "spellings",
    [
        ["ADMIN@example.com", " admin@example.com", "Admin@Example.COM\t"],
        ["admin@EXAMPLE.com", "ＡＤＭＩＮ@example.com", "admin@example.com "],  # fullwidth letters: NFKC
    ],
)
def test_case_whitespace_and_unicode_forms_of_an_email_count_as_one_account(
    accounts: None, clock: Clock, spellings: list[str]
) -> None:
    with limits(LOGIN_FAILURES_PER_ACCOUNT=3):
        assert statuses([login(email, "wrong", f"10.1.0.{n}") for n, email in enumerate(spellings)]) == [401] * 3
        assert login(ADMIN_EMAIL, ADMIN_PASSWORD, "10.1.0.9")[0] == 429


def test_an_unknown_account_throttles_exactly_like_a_known_one(accounts: None, clock: Clock) -> None:
    def attempts(email: str) -> list[tuple[int, Any, str | None]]:
        return [login(email, "wrong", f"10.2.{len(email)}.{n}") for n in range(4)]

    with limits(LOGIN_FAILURES_PER_ACCOUNT=3):
        known, unknown = attempts(ADMIN_EMAIL), attempts("nobody@example.com")
    assert known == unknown == [(401, INVALID, None)] * 3 + [(429, throttled(800_000), "800")]


def test_a_success_gives_its_count_back(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_FAILURES_PER_ACCOUNT=2):
        results = [
            login(ADMIN_EMAIL, "wrong"),
            login(ADMIN_EMAIL, ADMIN_PASSWORD),
            login(ADMIN_EMAIL, "wrong"),
            login(ADMIN_EMAIL, "wrong"),
        ]
    assert statuses(results) == [401, 200, 401, 429]


def test_an_attempt_in_progress_counts_already(accounts: None, clock: Clock) -> None:
    """Concurrent guesses cannot all pass the check before the first failure is recorded: each is counted when
    it starts, and given back only when it succeeds."""
    account = throttle.account_key("email", ADMIN_EMAIL)
    with (
        limits(LOGIN_FAILURES_PER_ACCOUNT=1),
        throttle.login_attempt("10.3.0.1", account),
        pytest.raises(LoginThrottled) as refused,
        throttle.login_attempt("10.3.0.2", account),
    ):
        pytest.fail("a second attempt ran while the first was being checked")
    assert refused.value.message == "Too many login attempts, retry after 800000ms."


# -- per client address --------------------------------------------------------------------------------------------


def test_failures_from_one_address_are_limited_across_accounts(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_FAILURES_PER_ADDRESS=3):
        sprayed = [login(f"user{n}@example.com", "Winter2026!", "10.4.0.1") for n in range(3)]
        assert statuses(sprayed) == [401, 401, 401]
        assert login(EDITOR_EMAIL, EDITOR_PASSWORD, "10.4.0.1") == (429, throttled(800_000), "800")
        assert login(EDITOR_EMAIL, EDITOR_PASSWORD, "10.4.0.2")[0] == 200


def test_every_login_and_refresh_from_one_address_is_bounded(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_ATTEMPTS_PER_ADDRESS=4):
        status, body, _ = login(EDITOR_EMAIL, EDITOR_PASSWORD, "10.5.0.1")
        assert status == 200
        refresh = body["data"]["refresh_token"]
        assert post("/auth/refresh", {"refresh_token": refresh}, "10.5.0.1")[0] == 200
        assert post("/auth/login", {"email": EDITOR_EMAIL}, "10.5.0.1")[0] == 400  # a bad body counts too
        assert login(EDITOR_EMAIL, EDITOR_PASSWORD, "10.5.0.1")[0] == 200
        assert login(EDITOR_EMAIL, EDITOR_PASSWORD, "10.5.0.1") == (429, throttled(800_000), "800")
        assert post("/auth/refresh", {"refresh_token": "x.y.z"}, "10.5.0.1") == (429, throttled(800_000), "800")
        assert login(EDITOR_EMAIL, EDITOR_PASSWORD, "10.5.0.2")[0] == 200


def test_failed_refreshes_count_per_address(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_FAILURES_PER_ADDRESS=2):
        good = login(EDITOR_EMAIL, EDITOR_PASSWORD, "10.6.0.9")[1]["data"]["refresh_token"]
        assert statuses([post("/auth/refresh", {"refresh_token": "x.y.z"}, "10.6.0.1") for _ in range(2)]) == [401] * 2
        assert post("/auth/refresh", {"refresh_token": good}, "10.6.0.1") == (429, throttled(800_000), "800")
        assert post("/auth/refresh", {"refresh_token": good}, "10.6.0.2")[0] == 200


def test_logout_is_not_a_login(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_ATTEMPTS_PER_ADDRESS=1, LOGIN_FAILURES_PER_ADDRESS=1):
        refresh = login(EDITOR_EMAIL, EDITOR_PASSWORD)[1]["data"]["refresh_token"]
        assert [post("/auth/logout", {"refresh_token": "x.y.z"})[0] for _ in range(3)] == [401] * 3
        assert post("/auth/logout", {"refresh_token": refresh})[0] == 204


def test_unlimited_settings_count_nothing(accounts: None, clock: Clock) -> None:
    unlimited = limits(
        LOGIN_ATTEMPTS_PER_ADDRESS=None, LOGIN_FAILURES_PER_ADDRESS=None, LOGIN_FAILURES_PER_ACCOUNT=None
    )
    with unlimited:
        assert set(statuses([login(ADMIN_EMAIL, "wrong") for _ in range(12)])) == {401}


# -- the client address ----------------------------------------------------------------------------------------------


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_FAILURES_PER_ADDRESS=1):
        assert login("a@example.com", "x", "10.7.0.1", HTTP_X_FORWARDED_FOR="192.0.2.1")[0] == 401
        # A different claimed address changes nothing: the peer is what counts.
        assert login("b@example.com", "x", "10.7.0.1", HTTP_X_FORWARDED_FOR="192.0.2.2")[0] == 429


def test_with_one_trusted_proxy_the_address_it_saw_counts(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_FAILURES_PER_ADDRESS=1, LOGIN_TRUSTED_PROXIES=1):
        assert login("a@example.com", "x", "10.8.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.1")[0] == 401
        # The client's own claim (left of the proxy's entry) is not believed: same client, refused.
        assert login("b@example.com", "x", "10.8.0.1", HTTP_X_FORWARDED_FOR="7.7.7.7, 192.0.2.1")[0] == 429
        # Another client behind the same proxy.
        assert login("c@example.com", "x", "10.8.0.1", HTTP_X_FORWARDED_FOR="192.0.2.2")[0] == 401


def test_the_hosts_rest_framework_settings_do_not_change_the_address(accounts: None, clock: Clock) -> None:
    host = override_settings(REST_FRAMEWORK={"NUM_PROXIES": 1, "DEFAULT_THROTTLE_RATES": {"anon": "1/day"}})
    with host, limits(LOGIN_FAILURES_PER_ADDRESS=1):
        assert login("a@example.com", "x", "10.9.0.1", HTTP_X_FORWARDED_FOR="192.0.2.1")[0] == 401
        assert login("b@example.com", "x", "10.9.0.1", HTTP_X_FORWARDED_FOR="192.0.2.2")[0] == 429


@pytest.mark.parametrize(
    ("remote", "forwarded", "proxies", "counted_as"),
    [
        ("10.0.0.1", None, 0, "10.0.0.1"),
        ("2001:db8:1:2:aaaa::1", None, 0, "2001:db8:1:2::/64"),  # one IPv6 client holds a /64
        ("2001:db8:1:2:bbbb::7", None, 0, "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.9", None, 0, "192.0.2.9"),
        (None, None, 0, "unknown"),
        ("not an address", None, 0, "unknown"),
        ("10.0.0.1", "192.0.2.1", 0, "10.0.0.1"),
        ("10.0.0.1", " 192.0.2.1 ,10.0.0.2", 2, "192.0.2.1"),
        ("10.0.0.1", "10.0.0.2", 2, "10.0.0.2"),  # fewer entries than proxies: the leftmost (as DRF)
        ("10.0.0.1", "junk", 1, "unknown"),
    ],
)
def test_client_address(remote: str | None, forwarded: str | None, proxies: int, counted_as: str) -> None:
    with limits(LOGIN_TRUSTED_PROXIES=proxies):
        assert throttle.client_address(remote, forwarded) == counted_as


def test_a_sockets_address_comes_from_its_scope() -> None:
    scope = {"client": ["198.51.100.4", 50000], "headers": [(b"x-forwarded-for", b"203.0.113.1")]}
    assert throttle.scope_address(scope) == "198.51.100.4"
    with limits(LOGIN_TRUSTED_PROXIES=1):
        assert throttle.scope_address(scope) == "203.0.113.1"
    assert throttle.scope_address({"headers": []}) == "unknown"


# -- the cache -------------------------------------------------------------------------------------------------------


def test_counts_live_in_the_named_cache(accounts: None, clock: Clock) -> None:
    from django.core.cache import caches

    other = {
        **settings.CACHES,
        "throttle": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"},
    }
    with override_settings(CACHES=other), limits(LOGIN_THROTTLE_CACHE="throttle", LOGIN_FAILURES_PER_ACCOUNT=1):
        caches["throttle"].clear()
        assert statuses([login(ADMIN_EMAIL, "wrong"), login(ADMIN_EMAIL, "wrong")]) == [401, 429]
        caches["throttle"].clear()
        assert login(ADMIN_EMAIL, ADMIN_PASSWORD)[0] == 200


@pytest.fixture
def broken_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.cache.backends.locmem import LocMemCache

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(LocMemCache, "add", unreachable)
    monkeypatch.setattr(throttle, "_last_cache_error_logged", float("-inf"))


def test_an_unreachable_cache_lets_logins_through_and_says_so_once(
    accounts: None, clock: Clock, broken_cache: None, caplog: pytest.LogCaptureFixture
) -> None:
    with limits(LOGIN_FAILURES_PER_ACCOUNT=1), caplog.at_level(logging.ERROR, logger="realtime_auth.throttle"):
        assert statuses([login(ADMIN_EMAIL, "wrong") for _ in range(3)] + [login(ADMIN_EMAIL, ADMIN_PASSWORD)]) == [
            401,
            401,
            401,
            200,
        ]
    assert [record.getMessage() for record in caplog.records] == [
        "login throttle: the cache 'default' failed (ConnectionError): logins are not throttled while it fails"
    ]


def test_the_throttle_log_line_names_no_account_and_no_password(
    accounts: None, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with limits(LOGIN_FAILURES_PER_ACCOUNT=1), caplog.at_level(logging.DEBUG):
        for _ in range(4):
            login(" Admin@Example.com", "hunter2-secret", "10.10.0.1")
    text = "\n".join(record.getMessage() for record in caplog.records)
    digest = throttle.account_key("email", ADMIN_EMAIL)
    warnings = [r.getMessage() for r in caplog.records if r.name == "realtime_auth.throttle"]
    assert warnings == [f"login throttle: account limit (1 in 900s) reached for account #{digest[:12]}"]
    assert "dmin@" not in text.lower() and "hunter2" not in text


# -- system checks ---------------------------------------------------------------------------------------------------


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [str(message.id) for message in messages]


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", ["realtime_auth.W003"]),
        ("django.core.cache.backends.dummy.DummyCache", ["realtime_auth.W004"]),
        ("django.core.cache.backends.redis.RedisCache", []),
        ("django.core.cache.backends.memcached.PyMemcacheCache", []),
    ],
)
def test_a_cache_that_processes_do_not_share_is_a_deploy_warning(backend: str, expected: list[str]) -> None:
    with override_settings(CACHES={"default": {"BACKEND": backend, "LOCATION": "127.0.0.1:1"}}):
        found = check_throttle_cache_shared()
        assert ids(found) == expected
        assert ids(check_throttle_cache()) == []
    if expected == ["realtime_auth.W003"]:
        assert found[0].msg == (
            "The login throttle's cache 'default' is local to each server process (django.core.cache.backends."
            "locmem.LocMemCache): a client spreading its login attempts over n processes gets n times the limits."
        )


def test_a_cache_alias_that_does_not_exist_is_an_error() -> None:
    with limits(LOGIN_THROTTLE_CACHE="throttle"):
        (error,) = check_throttle_cache()
    assert error.id == "realtime_auth.E004"
    assert error.msg.startswith("LIKHA_REALTIME['LOGIN_THROTTLE_CACHE'] = 'throttle' names no cache in CACHES")


@pytest.mark.parametrize(
    ("variable", "text", "value"),
    [
        ("LOGIN_THROTTLE_WINDOW", "15m", 900),
        ("LOGIN_ATTEMPTS_PER_ADDRESS", "unlimited", None),
        ("LOGIN_FAILURES_PER_ADDRESS", "20", 20),
        ("LOGIN_FAILURES_PER_ACCOUNT", "5", 5),
        ("LOGIN_TRUSTED_PROXIES", "1", 1),
        ("LOGIN_THROTTLE_CACHE", "throttle", "throttle"),
    ],
)
def test_each_limit_has_its_environment_variable(variable: str, text: str, value: Any) -> None:
    from realtime_auth.conf import auth_settings

    assert auth_settings.from_environ({variable: text}) == {variable: value}


@pytest.mark.parametrize(
    ("variable", "text"),
    [("LOGIN_FAILURES_PER_ACCOUNT", "0"), ("LOGIN_THROTTLE_WINDOW", "0s"), ("LOGIN_TRUSTED_PROXIES", "unlimited")],
)
def test_invalid_limits_stop_start_up(variable: str, text: str) -> None:
    from realtime_auth.conf import EnvError, auth_settings

    with pytest.raises(EnvError, match=variable):
        auth_settings.from_environ({variable: text})


def test_a_page_on_an_allowed_origin_may_read_retry_after(accounts: None, clock: Clock) -> None:
    with limits(LOGIN_FAILURES_PER_ACCOUNT=1):
        login(ADMIN_EMAIL, "wrong")
        response = Client(REMOTE_ADDR="127.0.0.1").post(
            "/auth/login",
            {"email": ADMIN_EMAIL, "password": "wrong"},
            content_type="application/json",
            HTTP_ORIGIN="http://localhost:5173",
        )
    assert (response.status_code, response["Retry-After"]) == (429, "800")
    assert response["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert response["Access-Control-Expose-Headers"] == "retry-after"

"""Redaction by rule: keys that name a secret (any case and separator), URL passwords, Bearer/Basic, JWTs; near
misses stay readable; values end where they end; idempotent; linear time (checked on the compiled patterns)."""

from __future__ import annotations

import re
import string
from re import _parser as sre_parser  # the parse tree of a pattern: the only way to inspect its repeats
from re._constants import MAXREPEAT
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from likha_realtime.logs import redact as redact_module
from likha_realtime.logs.redact import is_secret_key, redact, secret_kind

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"

# -- the key rule ---------------------------------------------------------------------------------------------

SECRET_KEYS = {
    # snake, camel, kebab, dotted, spaced, upper; prefixed and suffixed
    "password": "secret",
    "client_secret": "secret",
    "db_password": "secret",
    "DB_PASS": "secret",
    "jwt_secret": "secret",
    "jwtSecret": "secret",
    "JWT_SECRET": "secret",
    "pwd": "secret",
    "passwd": "secret",
    "passphrase": "secret",
    "accessToken": "secret",
    "refresh_token": "secret",
    "refreshToken": "secret",
    "id_token": "secret",
    "X-Api-Key": "secret",
    "api-key": "secret",
    "apikey": "secret",
    "APIKey": "secret",
    "HTTP_X_API_KEY": "secret",
    "sessionid": "secret",
    "session_id": "secret",
    "sessionID": "secret",
    "JSESSIONID": "secret",
    "PHPSESSID": "secret",
    "csrftoken": "secret",
    "X-CSRFToken": "secret",
    "csrfmiddlewaretoken": "secret",
    "private_key": "secret",
    "privateKey": "secret",
    "secret_key": "secret",
    "JWT_SIGNING_KEY": "secret",
    "openapiKey": "secret",
    "oauth_key": "secret",
    "credentials": "secret",
    "X-Amz-Credential": "secret",
    "X-Amz-Signature": "secret",
    "X-Amz-Security-Token": "secret",
    "spring.datasource.password": "secret",
    "--password": "secret",
    "api key": "secret",
    "Client Secret": "secret",
    "AWS Secret Access Key": "secret",
    "new_password1": "secret",
    "password2": "secret",
    "password_hash": "secret",
    "passwordConfirmation": "secret",
    "token_value": "secret",
    "otp": "secret",
    "has_password": "secret",  # only the last word decides: a boolean named so is masked too
    "Cookie": "cookie",
    "cookies": "cookie",
    "Set-Cookie": "cookie",
    "HTTP_COOKIE": "cookie",
    "cookie_header": "cookie",
    "Authorization": "authorization",
    "Proxy-Authorization": "authorization",
    "HTTP_AUTHORIZATION": "authorization",
}
NOT_SECRET_KEYS = (
    "token_type",  # the last word decides
    "tokens_used",
    "max_tokens",  # "tokens" counts, it is not a secret word
    "password_reset_count",
    "password_required",
    "session_count",
    "session_expiry",
    "sessions",
    "secret_name",
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_AGE",
    "PASSWORD_HASHERS",
    "token_expires_in",
    "api_key_id",
    "author",  # whole words only
    "passage",
    "keyboard",
    "secretary",
    "pwdx",
    "bypass",
    "passwordless",
    "tokenizer",
    "key",  # a key alone, or after a word that does not make it secret
    "public_key",
    "primary_key",
    "cache_key",
    "LOGS_AUTH",  # "auth" names modes and types
    "user_data",  # a form word after no secret word
    "",
)


@pytest.mark.parametrize(("key", "kind"), SECRET_KEYS.items())
def test_keys_that_name_a_secret(key: str, kind: str) -> None:
    assert secret_kind(key) == kind
    assert is_secret_key(key)


@pytest.mark.parametrize("key", NOT_SECRET_KEYS)
def test_near_miss_keys_are_not_secrets(key: str) -> None:
    assert secret_kind(key) is None
    assert not is_secret_key(key)


# -- masking text ---------------------------------------------------------------------------------------------

MASKED = [
    # separators: =, :, =>, JSON, Python repr, headers, query strings, CLI flags
    ("client_secret=abc123 next=1", "client_secret=[REDACTED] next=1"),
    ("db_password=hunter2", "db_password=[REDACTED]"),
    ("jwt_secret: s3cr3t", "jwt_secret: [REDACTED]"),
    ("jwtSecret=s3cr3t", "jwtSecret=[REDACTED]"),
    ("pwd=hunter2", "pwd=[REDACTED]"),
    ("accessToken=abc", "accessToken=[REDACTED]"),
    ("refreshToken: abc, next", "refreshToken: [REDACTED], next"),
    ("refresh_token=abc", "refresh_token=[REDACTED]"),
    ("X-Api-Key: abc123", "X-Api-Key: [REDACTED]"),
    ("api-key=abc123 apikey=abc API_KEY=abc", "api-key=[REDACTED] apikey=[REDACTED] API_KEY=[REDACTED]"),
    ("sessionid=abc; theme=dark", "sessionid=[REDACTED]; theme=dark"),
    ("session_id=abc csrftoken=def&next=/", "session_id=[REDACTED] csrftoken=[REDACTED]&next=/"),
    ('password => "x"', 'password => "[REDACTED]"'),
    (":password => 'x', :user => 'bob'", ":password => '[REDACTED]', :user => 'bob'"),
    ('{"email": "a@example.com", "password": "hunter2"}', '{"email": "a@example.com", "password": "[REDACTED]"}'),
    ('{"access_token":"abc","n":1}', '{"access_token":"[REDACTED]","n":1}'),
    ("{'password': 'hunter2', 'user': 'bob'}", "{'password': '[REDACTED]', 'user': 'bob'}"),
    ("{'password': 'it''s'}", "{'password': '[REDACTED]''s'}"),
    ("Creds(user='bob', password='x')", "Creds(user='bob', password='[REDACTED]')"),
    ("password='a\\'b' x=1", "password='[REDACTED]' x=1"),
    ('"a\\"b" password: "x\\"y" z', '"a\\"b" password: "[REDACTED]" z'),
    ("GET /x?a=1&access_token=tok123", "GET /x?a=1&access_token=[REDACTED]"),
    ("GET /websockets?access_token=abc&x=1", "GET /websockets?access_token=[REDACTED]&x=1"),
    (
        "https://example.com/cb?code=1&access_token=abc&state=x",
        "https://example.com/cb?code=1&access_token=[REDACTED]&state=x",
    ),
    ("--password=hunter2 --user=bob", "--password=[REDACTED] --user=bob"),
    ("spring.datasource.password=x", "spring.datasource.password=[REDACTED]"),
    ("new_password1=x new_password2=y", "new_password1=[REDACTED] new_password2=[REDACTED]"),
    ("password_hash=pbkdf2_sha256$abc", "password_hash=[REDACTED]"),
    ("login email=r@example.com password=hunter2secret next=1", "login email=r@example.com password=[REDACTED] next=1"),
    # spaced keys (one or two words before the separator)
    ("api key: abc", "api key: [REDACTED]"),
    ("Client Secret = abc", "Client Secret = [REDACTED]"),
    ("the private key: abc", "the private key: [REDACTED]"),
    # header lines, also escaped inside a JSON string
    ("Host: x\nX-Api-Key: abc\nAccept: */*", "Host: x\nX-Api-Key: [REDACTED]\nAccept: */*"),
    ('"Host: x\\r\\nX-CSRFToken: abc\\r\\nAccept: */*"', '"Host: x\\r\\nX-CSRFToken: [REDACTED]\\r\\nAccept: */*"'),
    # a whole Cookie header: every pair
    ("Cookie: sessionid=abc; csrftoken=def", "Cookie: [REDACTED]"),
    ("Set-Cookie: sessionid=abc; Path=/; HttpOnly", "Set-Cookie: [REDACTED]"),
    ("Cookie: a=1; b=2\nHost: x", "Cookie: [REDACTED]\nHost: x"),
    (
        '"headers": "Host: x\\r\\nCookie: a=1; b=2\\r\\nAccept: */*"',
        '"headers": "Host: x\\r\\nCookie: [REDACTED]\\r\\nAccept: */*"',
    ),
    (
        "{'HTTP_COOKIE': 'sessionid=abc; csrftoken=def', 'HTTP_HOST': 'x'}",
        "{'HTTP_COOKIE': '[REDACTED]', 'HTTP_HOST': 'x'}",
    ),
    # Authorization keeps its scheme
    ("Authorization: Bearer abc.def", "Authorization: Bearer [REDACTED]"),
    ("Authorization: Bearer opaque-credential-99", "Authorization: Bearer [REDACTED]"),
    ("Authorization=Basic Zm9vOmJhcg==", "Authorization=Basic [REDACTED]"),
    ("authorization=Token abc next", "authorization=Token [REDACTED] next"),
    ("Authorization: opaque-credential-99", "Authorization: [REDACTED]"),
    ("Proxy-Authorization: Basic Zm9vOmJhcg==", "Proxy-Authorization: Basic [REDACTED]"),
    ('Proxy-Authorization: Digest username="bob", realm="a b", response="c"', "Proxy-Authorization: Digest [REDACTED]"),
    ("{'HTTP_AUTHORIZATION': 'Bearer abc'}", "{'HTTP_AUTHORIZATION': 'Bearer [REDACTED]'}"),
    # credentials in URLs
    ("postgres://user:pw@host/db", "postgres://user:[REDACTED]@host/db"),
    ("DATABASE_URL=postgres://app:s3cr3t@db:5432/likha", "DATABASE_URL=postgres://app:[REDACTED]@db:5432/likha"),
    ("redis://:pw@localhost:6379/0", "redis://:[REDACTED]@localhost:6379/0"),
    ("'amqp://guest:gu%40st@rabbit//'", "'amqp://guest:[REDACTED]@rabbit//'"),
    # JWTs, Bearer and Basic anywhere
    (f"issued {JWT} for 5", "issued [REDACTED] for 5"),
    (f"ws://host/websockets?x={JWT}", "ws://host/websockets?x=[REDACTED]"),
    ("sent Bearer abc123 to x", "sent Bearer [REDACTED] to x"),
    ("header Basic Zm9vOmJhcg== sent", "header Basic [REDACTED] sent"),
    # values: objects and lists to their first closing bracket; JSON inside a string; unterminated strings
    ('{"password": {"_eq": "hunter2"}, "n": 1}', '{"password": [REDACTED], "n": 1}'),
    ("<QueryDict: {'password': ['hunter2']}>", "<QueryDict: {'password': [REDACTED]}>"),
    ('filter: "{\\"password\\":\\"hunter2\\"}"', 'filter: "{\\"password\\":\\"[REDACTED]\\"}"'),
    ('"{\\"password\\":\\"a\\\\\\"b\\", \\"n\\": 1}"', '"{\\"password\\":\\"[REDACTED]\\", \\"n\\": 1}"'),
    ('{"password": "hunter2\nnext line', '{"password": "[REDACTED]\nnext line'),
    # values end at whitespace, quotes, & , ; ) ] } and string escapes
    ("password=ab,cd", "password=[REDACTED],cd"),
    ("(password=abc)", "(password=[REDACTED])"),
    ("{password: abc}", "{password: [REDACTED]}"),
    ("[token=abc]", "[token=[REDACTED]]"),
    ("password=abc;x=1", "password=[REDACTED];x=1"),
    ("'line\\npassword=abc\\nnext'", "'line\\npassword=[REDACTED]\\nnext'"),
    # a secret with no value before the next secret's key; a value followed by a colon
    ("password: token: abc", "password: token: [REDACTED]"),
    ('password: "api key": "x"', 'password: "api key": "[REDACTED]"'),
    ("password=abc: def", "password=[REDACTED]: def"),
    ("Cookie:  password: abc", "Cookie:  password: [REDACTED]"),
]
NEAR_MISSES = [
    "tokens issued: 3, token_type=access",
    "tokens_used=5 password_reset_count=3 session_count=2 max_tokens=512",
    "author=bob passage=x keyboard=y secretary=z pwdx=1 bypass=true passwordless=true",
    "cache_key=abc public_key=abc primary_key=5 key=7 api_key_id=5",
    "SESSION_COOKIE_NAME=sessionid SESSION_COOKIE_AGE=1209600",
    "the Basic authentication failed; Basic auth is off",
    "if password == other: pass",
    "credentials of user 5 changed: ending its sessions",
    "graphql socket: session revoked",
    "logs socket subscribed at info",
    'Unknown field "password" in collection "products".',
    'File "/srv/app/password.py", line 3, in check',
    "https://example.com/a/b?x=1 user@example.com 12:30:45",
    '{"type": "auth", "status": "ok"}',
    'password="" password= ',
    "eyJhbGciOiJIUzI1NiJ9 is a header, not a token",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_secrets_are_masked_and_nothing_else(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_stay_as_they_are(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("text", [expected for _, expected in MASKED] + NEAR_MISSES)
def test_redaction_is_idempotent(text: str) -> None:
    assert redact(text) == text


_CONTEXT = st.sampled_from(
    [" ", ", ", "; ", "&", "\n", "{", "}", '"', "'", "\\n", "\\\"", "=", ": ", "=> ", "x", "user=bob", "Bearer ",
     "Basic ", "eyJ", ".", "a@b", "://", "[REDACTED]", "Cookie: ", "Authorization: ", "token", "key", "api "]
)  # fmt: skip
_SECRET_WORD = st.sampled_from(["password", "Secret", "TOKEN", "apiKey", "api_key", "sessionid", "Cookie", "pwd"])
_SEPARATOR = st.sampled_from(["=", ": ", " => ", "="])
_QUOTE = st.sampled_from(["", '"', "'"])


@st.composite
def _pair(draw: Any) -> tuple[str, str]:
    """``<prefix><secret word><separator><quote>S3CR…<quote>``: a secret-named key with a marked value."""
    prefix, word = draw(st.sampled_from(["", "db_", "X-", "client.", "new ", "my"])), draw(_SECRET_WORD)
    if prefix == "my" and word == "pwd":
        prefix = "my_"  # a short secret word is a whole word only ("bypass" is not "pass"); long ones may be glued
    quote = draw(_QUOTE)
    value = "S3CR" + draw(st.text(string.ascii_letters + string.digits, min_size=1, max_size=12))
    key = prefix + word
    return f"{quote}{key}{quote}{draw(_SEPARATOR)}{quote}{value}{quote}", value


@given(st.lists(st.one_of(_CONTEXT, _pair().map(lambda pair: pair[0])), max_size=12).map("".join))
def test_redacting_twice_changes_nothing(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@given(st.lists(_CONTEXT, max_size=6).map("".join), _pair(), st.sampled_from([" ", ", ", "&", "; ", "\n", "}"]))
def test_a_value_of_a_secret_key_never_survives(before: str, pair: tuple[str, str], after: str) -> None:
    text, value = pair
    assert value not in redact(f"{before} {text}{after}x=1")


# -- linear time ----------------------------------------------------------------------------------------------


def _repeat_problems(items: Any, inside_unbounded: bool = False) -> list[str]:
    """Repeats that can backtrack (unbounded and not possessive) or that sit inside another unbounded repeat."""
    problems: list[str] = []
    for op, av in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            _, high, body = av
            unbounded = high == MAXREPEAT
            if unbounded and name != "POSSESSIVE_REPEAT":
                problems.append(f"backtracking {name}")
            if unbounded and inside_unbounded:
                problems.append("nested unbounded repeat")
            problems += _repeat_problems(body, inside_unbounded or unbounded)
        elif name == "SUBPATTERN":
            problems += _repeat_problems(av[3], inside_unbounded)
        elif name == "BRANCH":
            for branch in av[1]:
                problems += _repeat_problems(branch, inside_unbounded)
        elif name in ("ASSERT", "ASSERT_NOT"):
            problems += _repeat_problems(av[1], inside_unbounded)
        elif name == "ATOMIC_GROUP":
            problems += _repeat_problems(av, inside_unbounded)
        elif name == "GROUPREF_EXISTS":
            problems += _repeat_problems(av[1], inside_unbounded)
            problems += _repeat_problems(av[2] or [], inside_unbounded)
    return problems


def _patterns() -> dict[str, re.Pattern[str]]:
    found = {name: value for name, value in vars(redact_module).items() if isinstance(value, re.Pattern)}
    for table in ("_QUOTE_OR_LINE_END", "_CLOSE_OR_LINE_END"):
        found.update({f"{table}[{key}]": value for key, value in getattr(redact_module, table).items()})
    return found


def test_the_patterns_cannot_backtrack() -> None:
    """Every unbounded repeat is possessive and holds no other: a match attempt reads each character once."""
    patterns = _patterns()
    assert len(patterns) >= 14
    problems = {name: _repeat_problems(sre_parser.parse(p.pattern, p.flags)) for name, p in patterns.items()}
    assert problems == {name: [] for name in patterns}


@pytest.mark.parametrize("pattern", redact_module.SEARCHED, ids=lambda p: p.pattern[-30:])
def test_searched_patterns_start_only_where_a_run_starts(pattern: re.Pattern[str]) -> None:
    """A search tries every position; a negative lookbehind first rejects those inside a run in one step, so each
    run is consumed from its start only (else a long run of key characters would be read once per position)."""
    first_op, first_av = sre_parser.parse(pattern.pattern, pattern.flags)[0]
    assert str(first_op) == "BRANCH"
    lookbehind_op, (direction, _) = first_av[1][0][0]
    assert (str(lookbehind_op), direction) == ("ASSERT_NOT", -1)


MEGABYTE = 1_000_000
HOSTILE = [
    ("a" * MEGABYTE, "a" * MEGABYTE),
    ("password=" * (MEGABYTE // 9), "password=[REDACTED]"),
    ("password " * (MEGABYTE // 9), "password " * (MEGABYTE // 9)),
    ("api key " * (MEGABYTE // 8), "api key " * (MEGABYTE // 8)),
    ("x=" * (MEGABYTE // 2), "x=" * (MEGABYTE // 2)),
    ('{"password":"' + "x" * MEGABYTE, '{"password":"[REDACTED]'),
    ('"password":"' * (MEGABYTE // 12), '"password":"' * (MEGABYTE // 12)),
    ('password="' + '\\"' * (MEGABYTE // 2), 'password="[REDACTED]'),
    ('\\"password\\":\\"' * (MEGABYTE // 16), '\\"password\\":\\"' * (MEGABYTE // 16)),
    ("password: " + "{" * MEGABYTE, "password: [REDACTED]"),
    ("Authorization: Digest " + 'a="b", ' * (MEGABYTE // 8), "Authorization: Digest [REDACTED], "),
    ("eyJ" * (MEGABYTE // 3), "eyJ" * (MEGABYTE // 3)),
    ("eyJa.b." * (MEGABYTE // 7 // 2 * 2), "[REDACTED].b." * (MEGABYTE // 7 // 2)),
    ("postgres://" * (MEGABYTE // 11), "postgres://" * (MEGABYTE // 11)),
    ("a://b:" * (MEGABYTE // 6), "a://b:" * (MEGABYTE // 6)),
    ("http://" + "a" * MEGABYTE, "http://" + "a" * MEGABYTE),
    ("Bearer " * (MEGABYTE // 7 // 2 * 2), "Bearer [REDACTED] " * (MEGABYTE // 7 // 2)),
    ("Basic " + "QUJD" * (MEGABYTE // 4), "Basic " + "QUJD" * (MEGABYTE // 4)),
    ("\\" * MEGABYTE, "\\" * MEGABYTE),
    ("\\n" * (MEGABYTE // 2), "\\n" * (MEGABYTE // 2)),
    ('"' * MEGABYTE, '"' * MEGABYTE),
    (" " * MEGABYTE, " " * MEGABYTE),
    ("'a'" * (MEGABYTE // 3), "'a'" * (MEGABYTE // 3)),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE, ids=lambda value: repr(value[:14]))
def test_a_megabyte_of_hostile_text_is_redacted_exactly(text: str, expected: str) -> None:
    """Termination within the suite's timeout is the backstop; linearity itself is the two tests above."""
    assert redact(text) == expected

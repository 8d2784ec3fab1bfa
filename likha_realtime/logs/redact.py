"""``redact()``: masks the secrets log text visibly carries, by rule: a value whose key names a secret, the password
of a URL, a ``Bearer``/``Basic`` credential and any JWT.

The key rule (docs/PROTOCOL.md §7 states it for users):

- A key is a name of letters, digits, ``_ - .`` (optionally quoted, also with escaped quotes as in JSON inside a
  string), or two such words separated by one space (``api key``, ``Client Secret``), followed by ``=``, ``:`` or
  ``=>`` (``==`` and ``::`` are not separators). Its words are split at ``_ - .``, spaces and camelCase humps,
  lower-cased, trailing digits dropped (``password2`` is ``password``).
- Trailing *form* words (``hash``, ``digest``, ``confirmation``, ``value``, ``data``, ``header``... see
  ``FORM_WORDS``) are set aside: ``password_hash`` is judged as ``password``.
- The key names a secret when its last word is a secret word (``SECRET_WORDS``), or ends with a long one
  (``SECRET_ENDINGS``: ``csrftoken``, ``dbpassword``, ``jsessionid``, ``setcookie``), or is ``key`` after a word
  ending with a ``KEY_QUALIFIERS`` word or after a secret word (``api_key``, ``X-Api-Key``, ``private key``,
  ``secret_key``), or is ``id`` after ``session``. Only the last word decides, so ``token_type``, ``tokens_used``,
  ``password_reset_count`` and ``session_count`` stay readable, while ``has_password`` is masked. Words are whole:
  ``author``, ``passage``, ``keyboard``, ``secretary``, ``pwdx``, ``bypass`` and ``passwordless`` are not secrets.
- The value masked runs to its end and no further: a quoted string to its closing quote (escapes honoured; an
  unterminated one to the end of its line), an object or list (``{...}``, ``[...]``) to the first closing bracket on
  its line, anything else to the first whitespace, quote, ``& , ; ) ] }`` or escape (``\\n``). A ``Cookie`` or
  ``Set-Cookie`` value runs on across ``;``-separated pairs; an ``Authorization`` value keeps its scheme
  (``Bearer [REDACTED]``). Empty values stay as they are, and a "value" that is itself a secret's key followed by
  a separator is that key (``password: token: x`` masks ``x``).

Every pattern runs in linear time: the searched ones may start only where a run of what they consume begins (a
negative lookbehind), and every unbounded repeat is possessive and holds no other, so each character is read a
bounded number of times; tests/likha_realtime/logs/test_redact.py checks both on the compiled patterns.
"""

from __future__ import annotations

import binascii
import functools
import re
from typing import Literal

MASK = "[REDACTED]"

Kind = Literal["secret", "cookie", "authorization"]

# Words that name a secret on their own. Beyond the obvious: "pass" (DB_PASS, SMTP_PASS), "jwt", one-time
# passwords ("otp", "totp"), and "signature" (a signed URL's signature grants access like a token). Not "tokens"
# (token counts: max_tokens, tokens=512), not "auth" (it names modes and types as often: LOGS_AUTH=handshake).
SECRET_WORDS = frozenset(
    {
        "password", "passwd", "pwd", "pass", "passphrase", "secret", "secrets", "token", "apikey", "authorization",
        "cookie", "cookies", "session", "sessionid", "credential", "credentials", "privatekey", "jwt", "otp",
        "totp", "signature",
    }
)  # fmt: skip
# A last word ending with one of these is a secret too: names written without separators (csrftoken, xsrftoken,
# authtoken, dbpassword, setcookie, phpsessid, jsessionid, proxyauthorization).
SECRET_ENDINGS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "authorization", "cookie", "sessionid",
    "sessid", "credential", "credentials", "privatekey",
)  # fmt: skip
# "key" alone is a cache key or a row key; after a word ending with one of these (api_key, openapi_key, oauth_key)
# or after a secret word, it is a secret.
KEY_QUALIFIERS = (
    "api", "private", "access", "signing", "encryption", "master", "client", "app", "license", "subscription", "auth",
)  # fmt: skip
# How a secret is written down: set aside before judging the key (password_hash, token_value, cookie_header).
FORM_WORDS = frozenset(
    {
        "hash", "hashed", "digest", "confirm", "confirmation", "repeat", "again", "value", "raw", "plain",
        "plaintext", "enc", "encrypted", "b64", "base64", "hex", "str", "string", "text", "header", "data", "bytes",
    }
)  # fmt: skip
# IANA-registered HTTP authentication schemes (and the common unregistered Token/JWT): kept before the mask.
_SCHEMES = (
    "aws4-hmac-sha256|basic|bearer|digest|dpop|gnap|hoba|jwt|mutual|negotiate|ntlm|oauth|privatetoken"
    "|scram-sha-1|scram-sha-256|token|vapid"
)


def _start(consumed: str, *others: str) -> str:
    """Where a searched pattern may begin: not inside a run of ``consumed`` characters (the linear-time guard),
    except right after a string escape (``\\n``, ``\\r``, ``\\t``, ``\\uXXXX``), where text commonly resumes, or
    where one of ``others`` allows (each an assertion on one character, so it cannot admit a run twice)."""
    return "(?:" + "|".join((rf"(?<![{consumed}])", r"(?<=\\[nrt])", r"(?<=\\u[0-9A-Fa-f]{4})", *others)) + ")"


_KEY_CHARS = r"A-Za-z0-9_.\-"
_SEPARATOR = r"[ \t]*+(?:=>|=(?!=)|:(?!:))"
# A key's quote may follow anything but a backslash (a run of backslashes is entered at its first one).
_KEY_START = _start(_KEY_CHARS + "\\\\", r"""(?<!\\)(?=[\\"'])""")
_URL_START = _start(r"A-Za-z0-9+.\-")
_TOKEN_START = _start(r"A-Za-z0-9_\-")
_KEY = re.compile(
    rf"""
    {_KEY_START}
    (?P<quote>\\*+["'])?                                # the key's quote, escaped when JSON sits in a string
    (?P<key>(?:[{_KEY_CHARS}]++[ ])?[{_KEY_CHARS}]++)   # one name, or two words ("api key")
    (?(quote)(?P=quote)|["']?)                          # a lone closing quote: the opening one closed a value
    {_SEPARATOR}[ \t]*+
    """,
    re.VERBOSE,
)
_URL_PASSWORD = re.compile(
    rf"""
    {_URL_START}
    (?P<head>[A-Za-z][A-Za-z0-9+.\-]*+://[^\s:/?#@\[\]"']*+:)   # scheme://user:
    [^\s/?#@"']++(?=@)                                           # password, before @host
    """,
    re.VERBOSE,
)
_BEARER = re.compile(rf"{_TOKEN_START}(?P<scheme>(?i:bearer)[ \t]++)[A-Za-z0-9._~+/\-]++=*+")
_BASIC = re.compile(
    rf"{_TOKEN_START}(?P<scheme>(?i:basic)[ \t]++)(?P<credential>[A-Za-z0-9+/]++=*+)(?![A-Za-z0-9+/=_.\-])"
)
_JWT = re.compile(rf"{_TOKEN_START}eyJ[A-Za-z0-9_\-]*+\.[A-Za-z0-9_\-]++\.[A-Za-z0-9_\-]*+")
# Searched over whole texts; the rest are anchored (``match`` at a position) or run on a bounded key.
SEARCHED = (_KEY, _URL_PASSWORD, _BEARER, _BASIC, _JWT)

_QUOTE_OPEN = re.compile(r"""\\*+["']""")
_SCHEME = re.compile(rf"(?i:{_SCHEMES})[ \t]++(?=\S)")
# An unquoted value: up to whitespace, a quote, & , ; ) ] }, a string escape (\n \r \t \u \" \') or a colon that
# ends a key ("password: token: x"); an earlier mask inside is taken whole (a later pass must not split it).
_RUN = re.compile(r"""(?:\[REDACTED\]|[^\s&,;:)\]}"'\\]|:(?=\S)|\\(?![nrtu"']))++""")
# A Cookie value: the same, but on across "; " (every pair of the header).
_COOKIE_RUN = re.compile(r"""(?:\[REDACTED\]|[^\s&;:)\]}"'\\]|:(?=\S)|;[ ]?|\\(?![nrtu"']))++""")
_AFTER_QUOTED_KEY = re.compile(_SEPARATOR)
_AFTER_NAME_KEY = re.compile(r"[ \t]*+(?:=>|:(?!:))|[ \t]++=(?!=)")
# A value shaped like a key: one name unquoted (a second word would be the first's value), up to two quoted.
_NAME = re.compile(rf"[{_KEY_CHARS}]++")
_QUOTED_NAME = re.compile(rf"(?:[{_KEY_CHARS}]++[ ])?[{_KEY_CHARS}]++")
# An auth-param of a scheme such as Digest or AWS4-HMAC-SHA256: name=token or name="string", comma-separated.
_PARAMETER = re.compile(r"[A-Za-z0-9_\-]++=(?!=)")
_PARAMETER_COMMA = re.compile(r",[ \t]*+")
_QUOTE_OR_LINE_END = {'"': re.compile(r'["\n]'), "'": re.compile(r"['\n]")}
_CLOSE_OR_LINE_END = {"{": re.compile(r"[}\n]"), "[": re.compile(r"[\]\n]")}
_WORD_BREAK = re.compile(r"[^A-Za-z0-9]++|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_KEY_TAIL = 256  # characters of a key that decide (its last words); a longer "key" is not a name


def _words(key: str) -> list[str]:
    words = (word.lower().rstrip("0123456789") for word in _WORD_BREAK.split(key[-_KEY_TAIL:]))
    return [word for word in words if word]


def _secret_word(word: str) -> bool:
    return word in SECRET_WORDS or word.endswith(SECRET_ENDINGS)


@functools.lru_cache(maxsize=4096)
def _kind(key: str) -> Kind | None:
    words = _words(key)
    while len(words) > 1 and words[-1] in FORM_WORDS:
        words.pop()
    if not words:
        return None
    last, before = words[-1], words[-2] if len(words) > 1 else ""
    if last.endswith("cookie") or last == "cookies":
        return "cookie"
    if last.endswith("authorization"):
        return "authorization"
    if _secret_word(last):
        return "secret"
    if last == "key" and (before.endswith(KEY_QUALIFIERS) or _secret_word(before)):
        return "secret"
    if last == "id" and before in ("session", "sess"):
        return "secret"
    return None


def secret_kind(key: str) -> Kind | None:
    """How a value named ``key`` is masked (``None``: it is not a secret), by the rule of the module docstring."""
    return _kind(key[-_KEY_TAIL:])


def is_secret_key(key: str) -> bool:
    """Whether ``key`` names a secret (a log record attribute, a dict key, a ``key=value`` key)."""
    return secret_kind(key) is not None


def _closes(backslashes: int, level: int) -> bool:
    """Whether a quote after a run of ``backslashes`` closes a string whose opening quote had ``level`` of them.

    Level 0 (a plain string): an even run closes, an odd one escapes the quote. Level 1 (JSON inside a JSON
    string, opened with one backslash): a run of 1 modulo 4 closes; 3 is a quote escaped inside the inner string.
    Level 2^d - 1 in general: the run modulo 2^(d+1) equals the level. Other levels: exactly the same run.
    """
    if level & (level + 1) == 0:
        return backslashes % (2 * (level + 1)) == level
    return backslashes == level


def _string_end(text: str, opening: re.Match[str]) -> tuple[int, int]:
    """``(content end, end)`` of the string ``opening`` opens: at its closing quote (escapes honoured), or at the
    end of its line when it has none (strings in logs never span lines: JSON and reprs escape newlines)."""
    opener = opening.group()
    quote, level, start = opener[-1], len(opener) - 1, opening.end()
    stop = _QUOTE_OR_LINE_END[quote]
    position = start
    while (found := stop.search(text, position)) is not None and found.group() == quote:
        end = found.start()
        backslashes = 0
        while end - backslashes > start and text[end - backslashes - 1] == "\\":
            backslashes += 1
        if _closes(backslashes, level):
            return end - level, end + 1
        position = end + 1
    end = found.start() if found is not None else len(text)
    return end, end


def _next_key(text: str, value: str, end: int, quoted: bool) -> bool:
    """Whether ``value`` (ending at ``end``) is rather the key of the next secret, the first one having no value
    (``password: token: x``, ``password: "api key": "x"``). Unquoted, ``name=`` stays a value (a cookie's pairs,
    ``password=token=x``): the value runs on over it anyway."""
    shape, separator = (_QUOTED_NAME, _AFTER_QUOTED_KEY) if quoted else (_NAME, _AFTER_NAME_KEY)
    followed = separator.match(text, end) is not None
    return followed and shape.fullmatch(value) is not None and is_secret_key(value)


def _quoted(text: str, opening: re.Match[str], kind: Kind) -> tuple[int, str]:
    """A quoted value: its end, and the same quotes around the mask (an empty string is left as it is)."""
    content_end, end = _string_end(text, opening)
    content = text[opening.end() : content_end]
    if not content or _next_key(text, content, end, quoted=True):
        return opening.start(), ""
    scheme = _SCHEME.match(content) if kind == "authorization" else None
    closer = text[content_end:end]
    return end, opening.group() + (scheme.group() if scheme else "") + MASK + closer


def _bracketed(text: str, start: int) -> int:
    """The end of ``{...}`` or ``[...]`` at ``start``: its first closing bracket, or the end of its line."""
    found = _CLOSE_OR_LINE_END[text[start]].search(text, start)
    if found is None:
        return len(text)
    return found.end() if found.group() != "\n" else found.start()


def _parameters_end(text: str, start: int) -> int:
    """The end of an ``Authorization`` parameter list at ``start`` (``Digest username="bob", realm="x"``), or
    ``start`` when there is none."""
    end = start
    while (name := _PARAMETER.match(text, end)) is not None:
        opening = _QUOTE_OPEN.match(text, name.end())
        if opening is not None:
            end = _string_end(text, opening)[1]
        else:
            run = _RUN.match(text, name.end())
            end = run.end() if run is not None else name.end()
        comma = _PARAMETER_COMMA.match(text, end)
        if comma is None or _PARAMETER.match(text, comma.end()) is None:
            break
        end = comma.end()
    return end


def _masked_value(text: str, start: int, kind: Kind) -> tuple[int, str]:
    """``(end, replacement)`` of the value at ``start`` (``end == start``: there is none)."""
    if text.startswith(MASK, start):
        return start + len(MASK), MASK
    opening = _QUOTE_OPEN.match(text, start)
    if opening is not None:
        return _quoted(text, opening, kind)
    if text.startswith(("{", "["), start):
        return _bracketed(text, start), MASK
    if (name := _NAME.match(text, start)) is not None and _next_key(text, name.group(), name.end(), quoted=False):
        return start, ""
    if kind == "authorization" and (scheme := _SCHEME.match(text, start)) is not None:
        end = _parameters_end(text, scheme.end())
        if end > scheme.end():
            return end, scheme.group() + MASK
        end, masked = _masked_value(text, scheme.end(), "secret")
        return end, scheme.group() + masked
    run = (_COOKIE_RUN if kind == "cookie" else _RUN).match(text, start)
    if run is None:
        return start, ""
    return run.end(), MASK


def _mask_pairs(text: str) -> str:
    parts: list[str] = []
    done = position = 0
    while (found := _KEY.search(text, position)) is not None:
        position = found.end()
        kind = secret_kind(found.group("key"))
        if kind is None:
            continue
        end, masked = _masked_value(text, position, kind)
        if end > position:
            parts += (text[done:position], masked)
            done = position = end
    parts.append(text[done:])
    return "".join(parts)


def _mask_basic(found: re.Match[str]) -> str:
    """``Basic <base64 of user:password>`` only: "Basic authentication failed" is prose."""
    try:
        decoded = binascii.a2b_base64(found.group("credential"), strict_mode=True)
    except binascii.Error:
        return found.group()
    return found.group("scheme") + MASK if b":" in decoded else found.group()


def redact(text: str) -> str:
    """``text`` with every secret it visibly carries replaced by ``[REDACTED]``; ``redact(redact(t)) == redact(t)``."""
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}", text)
    text = _mask_pairs(text)
    text = _BEARER.sub(rf"\g<scheme>{MASK}", text)
    text = _BASIC.sub(_mask_basic, text)
    return _JWT.sub(MASK, text)

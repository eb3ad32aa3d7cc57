"""Keeping secrets out of what Recoup prints, logs and stores (issue 8.5).

Pure: no environment, no I/O. The caller passes the secret values it knows (see
`EnvConfig.secrets`); these functions only rewrite text.

- `redact_url(url)` masks a URL's user info (the password; a lone user name, which may be a
  token) and the values of secret-looking query or fragment parameters (`token`, `api_key`,
  `signature`…). What stays (scheme, host, port, path, other parameters) is what a person
  needs to recognise the endpoint.
- `redact_text(text, secrets)` replaces every known secret value (as written and
  percent-encoded) and redacts every URL found in the text, so an error message that quotes a
  URL or a password cannot carry it into stderr, the log, a result or a task.
- `url_secrets(url)` lists the secret parts of a URL (password, secret parameter values),
  leniently, so that even a malformed URL's password is known and masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

MASK = "***"

# Query parameter names whose value is a credential (compared lowercased, "-" read as "_").
SECRET_PARAMS = frozenset(
    {
        "token",
        "key",
        "api_key",
        "apikey",
        "secret",
        "password",
        "passwd",
        "pass",
        "pwd",
        "auth",
        "authorization",
        "signature",
        "sig",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "private_key",
        "session",
        "sessionid",
        "credential",
        "credentials",
        "x_amz_signature",
        "x_amz_credential",
        "x_amz_security_token",
    }
)
_SECRET_SUFFIXES = ("token", "secret", "password", "passwd", "apikey", "api_key", "_key", "_sig")

# scheme://… up to whitespace, a quote or a bracket that commonly closes a quoted URL
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# short secrets are replaced only where they stand alone, so "pw" does not eat "pwd"
_SHORT = 4


def is_secret_param(name: str) -> bool:
    """Whether a query parameter of this name carries a credential."""
    normalized = unquote(name).strip().lower().replace("-", "_")
    return normalized in SECRET_PARAMS or normalized.endswith(_SECRET_SUFFIXES)


def _redact_pairs(text: str) -> str:
    """`a=1&token=x` → `a=1&token=***`, keeping everything else as written."""
    pairs = []
    for pair in text.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and is_secret_param(name):
            pairs.append(f"{name}={MASK}")
        else:
            pairs.append(pair)
    return "&".join(pairs)


def _split_userinfo(url: str) -> tuple[str, str | None, str]:
    """(scheme://, user info or None, the rest). The user info ends at the last "@" before
    the path, as URL parsers read it (a password may hold an unencoded "@")."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return "", None, url
    start = scheme_end + 3
    end = len(url)
    for stop in "/?#":
        found = url.find(stop, start)
        if found >= 0:
            end = min(end, found)
    authority = url[start:end]
    if "@" not in authority:
        return url[:start], None, url[start:]
    userinfo, _, host = authority.rpartition("@")
    return url[:start], userinfo, host + url[end:]


def redact_url(url: str) -> str:
    """The URL with its user info and secret parameter values masked:
    `https://bob:pw@host/hook?token=abc&x=1` → `https://bob:***@host/hook?token=***&x=1`."""
    prefix, userinfo, rest = _split_userinfo(url)
    if userinfo is not None:
        user, colon, _password = userinfo.partition(":")
        # a lone user name may be a token (https://TOKEN@host): masked too
        masked = f"{user}:{MASK}" if colon and user else MASK
        rest = f"{masked}@{rest}"
    out = prefix + rest
    head, hash_sign, fragment = out.partition("#")
    base, question, query = head.partition("?")
    if question:
        head = base + "?" + _redact_pairs(query)
    if hash_sign:
        fragment = _redact_pairs(fragment)
    return head + hash_sign + fragment


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of a URL (its password, a lone user name, secret parameter values),
    decoded; found even in a URL too malformed to parse."""
    if not url:
        return []
    found: list[str] = []
    _prefix, userinfo, rest = _split_userinfo(url.strip())
    if userinfo:
        user, colon, password = userinfo.partition(":")
        if colon:
            found.append(unquote(password))
        else:
            found.append(unquote(user))
    tail = rest.split("?", 1)[1] if "?" in rest else ""
    for part in re.split(r"[&#]", tail):
        name, sep, value = part.partition("=")
        if sep and value and is_secret_param(name):
            found.append(unquote(value))
    return [value for value in found if value]


def url_problem(url: str) -> str | None:
    """Why an http(s) URL cannot be used, in words that never quote it (its user info may hold
    a password), or None. An unencoded "/" in a password makes the rest of it read as a port."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError:
        return (
            "is malformed: its port is not a number, or its password holds an unencoded "
            "/ ? # or @ (percent-encode them, e.g. / as %2F)"
        )
    if parts.scheme not in ("http", "https"):
        return "must be an http(s) URL"
    if not host:
        return "has no host"
    if port == 0:
        return "has port 0"
    return None


def _forms(secret: str) -> set[str]:
    """A secret as it may appear in text: as written, percent-encoded, and repr-escaped."""
    forms = {secret, quote(secret, safe=""), quote(secret, safe=":@!$&'()*+,;=")}
    forms.add(repr(secret)[1:-1])
    return {form for form in forms if form}


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every known secret value and every URL's credentials masked."""
    values: set[str] = set()
    for secret in secrets:
        if secret:
            values |= _forms(secret)
    for value in sorted(values, key=len, reverse=True):  # longest first: no partial leftovers
        if len(value) >= _SHORT:
            text = text.replace(value, MASK)
        else:
            pattern = rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])"
            text = re.sub(pattern, MASK, text)
    return _URL_IN_TEXT.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    url = match.group(0)
    # punctuation that ends the sentence, not the URL
    stripped = url.rstrip(".,;:!)]}")
    return redact_url(stripped) + url[len(stripped) :]


__all__ = [
    "MASK",
    "SECRET_PARAMS",
    "is_secret_param",
    "redact_text",
    "redact_url",
    "url_problem",
    "url_secrets",
]

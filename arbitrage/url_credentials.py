"""Masks the passwords that URLs carry, wherever a URL is shown: logs, tables, messages, config.

`redis://:pw@host`, `postgresql://user:pw@host/db` and libpq's `?password=pw` all put a secret
into a string that is otherwise fine to print. `mask_url_credentials` rewrites any text so that
the password part reads `***` and the rest (scheme, user, host, database) stays readable.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"

# scheme://user:password@ with the password up to the authority's last '@': libpq and urllib
# disagree on which '@' ends an unencoded password, so the wider span is masked. A password
# cannot contain '/' or whitespace unencoded, so the match never runs past the authority.
_USERINFO_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)(?P<password>[^\s/]*)@")
# libpq and redis-py also take the password as a query parameter (and libpq as a keyword).
_PASSWORD_PARAMETER = re.compile(r"(?P<head>(?<![A-Za-z0-9_])(?:ssl)?password=)(?P<password>[^\s&#'\"]+)")


def mask_url_credentials(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***; user, host and path kept."""
    # Every log line passes here: the substring tests spare the regex scans of lines without a URL.
    if "://" in text:
        text = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@" if m["password"] else m[0], text)
    if "password=" in text:
        text = _PASSWORD_PARAMETER.sub(lambda m: m["head"] + MASK, text)
    return text


def url_passwords(url: str | None) -> list[str]:
    """The passwords a URL carries, as written and decoded, for redacting them wherever they appear."""
    if not url or "://" not in url:
        return []
    found: list[str] = []
    match = _USERINFO_PASSWORD.search(url)
    if match and match["password"]:
        found.append(match["password"])
    try:
        query = urlsplit(url).query
    except ValueError:  # an unparsable URL still had its userinfo password taken above
        query = ""
    found += [v for k, v in parse_qsl(query, keep_blank_values=False) if k in ("password", "sslpassword")]
    found += [m["password"] for m in _PASSWORD_PARAMETER.finditer(url)]
    return [p for p in dict.fromkeys(found + [unquote(p) for p in found]) if p and p != MASK]

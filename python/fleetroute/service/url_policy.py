"""Which URLs the service may send requests to.

A registered service or model instance is a place the proxy and the health checks will
connect to, so only an admin may add one, and only a plain ``http``/``https`` URL with
a host: no credentials embedded in it (they would end up in logs and listings), no
other schemes (``file:``, ``gopher:``), no fragment.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

__all__ = ["check_service_url"]

# A DNS name: letters, digits, hyphens and dots (IDNs in their ASCII form).
_HOSTNAME = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$"
)


def check_service_url(url: str) -> str:
    """Returns ``url`` if the service may call it; raises ValueError saying why not."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("must be a non-empty URL")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url[:200]!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"must start with http:// or https:// (got scheme {parts.scheme or 'none'!r})"
        )
    if not parts.hostname:
        raise ValueError(f"must name a host (got {url[:200]!r})")
    if not _HOSTNAME.match(parts.hostname):
        try:
            ipaddress.ip_address(parts.hostname)
        except ValueError:
            raise ValueError(
                f"host {parts.hostname[:100]!r} is not a DNS name or IP address"
            ) from None
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not embed credentials (user:password@)")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    if port == 0:
        raise ValueError("port 0 is not a valid port")
    return url

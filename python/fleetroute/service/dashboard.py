"""``GET /dashboard``: the live operations page, one self-contained HTML file.

The page (``static/dashboard.html``) carries its CSS and JavaScript inline and loads
nothing from anywhere else: it works offline, behind an air gap and without a build
step. It subscribes to ``WS /ws/routing`` on the host that served it and renders the
snapshot and decision messages as they arrive.

The response carries a Content-Security-Policy that allows exactly the page's own
inline script and style (by hash, computed from the file when it is first served) and
connections back to its own origin, so the browser itself refuses any other source.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["DASHBOARD_PATH", "DashboardPage", "dashboard_router", "load_dashboard_page"]

#: Where the page is served.
DASHBOARD_PATH = "/dashboard"

_PACKAGE = "fleetroute.service"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


@dataclass(frozen=True, slots=True)
class DashboardPage:
    """The page's HTML and the security policy that matches its inline code."""

    html: str
    content_security_policy: str


def _sha256_source(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


@cache
def load_dashboard_page() -> DashboardPage:
    """Reads ``static/dashboard.html`` from the package (once) and derives its policy."""
    html = (resources.files(_PACKAGE) / "static" / "dashboard.html").read_text(encoding="utf-8")
    scripts: list[str] = []
    styles: list[str] = []
    for tag, body in _INLINE.findall(html):
        (scripts if tag == "script" else styles).append(_sha256_source(body))
    if not scripts or not styles:
        raise RuntimeError("static/dashboard.html must carry an inline <script> and <style>")
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {' '.join(scripts)}",
            f"style-src {' '.join(styles)}",
            # The favicon is an empty data: URL, so the browser asks the server for none.
            "img-src data:",
            # 'self' covers ws:// and wss:// to the page's own host and port.
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return DashboardPage(html=html, content_security_policy=policy)


dashboard_router = APIRouter()


@dashboard_router.get(DASHBOARD_PATH, response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """The dashboard page; the WebSocket token, if any, comes from its ``?token=``."""
    page = load_dashboard_page()
    return HTMLResponse(
        page.html,
        headers={
            "Content-Security-Policy": page.content_security_policy,
            # The page URL may hold a token: never hand it to another site as a referrer.
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )

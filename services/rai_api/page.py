"""The chat page at `GET /` and the headers that keep it (and every API answer) safe to open.

The page is static HTML, CSS and JavaScript in `static/` beside this module, shipped as package
data (no build step, nothing fetched from anywhere else). It is served by the RAI API itself, so
the page and the API share one origin: no CORS, no proxy, no second port (the troubleshooting
log's frontend failed on exactly that hop).

Every response carries a strict Content-Security-Policy (scripts and styles from this origin only,
no inline script, no request to another origin, no framing), `nosniff` and `no-referrer`.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app

page = Blueprint("page", __name__)

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors' older spelling, for browsers without CSP 2
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@page.get("/")
def index() -> Response:
    response = current_app.send_static_file("index.html")
    response.cache_control.no_cache = True  # revalidate (ETag): an upgraded raictl serves its new page
    return response


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def register_page(app: Flask) -> None:
    """Serve the page at `/` (its files under `/static/`) and add the security headers to every response."""
    app.register_blueprint(page)
    app.after_request(_secure)

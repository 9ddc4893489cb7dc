"""Which requests a service answers at all: the Host it is asked for, and where a state-changing request
comes from. Shared by both services (DESIGN.md: "Only loopback Hosts (and configured ones) are served;
cross-origin state-changing requests are refused").

DNS rebinding: a page of `evil.example` re-points its own name at 127.0.0.1 and calls the API as
same-origin, so the browser's CORS rules never apply. The request still says `Host: evil.example`: a
Host that is not a loopback name, a listen address or a configured `allowed_hosts` entry is a 400.
A browser names the page behind every cross-origin POST or DELETE in `Origin`; one that is not the
API's own origin (scheme://Host of the request, which the chat page at `/` has) or a configured
`allowed_origins` entry is a 403. A request without `Origin` (curl, raictl, the RAI API calling the
LLM API) is not a browser's cross-origin request and passes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable
from urllib.parse import urlsplit

from flask import Flask, request

from services.http_json import JsonError

if TYPE_CHECKING:
    from raishared.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARDS = frozenset({"0.0.0.0", "::"})


def host_name(host: str) -> str:
    """The name of a Host header or origin netloc without its port or brackets, lower-cased:
    `[::1]:6102` -> `::1`, `LocalHost.:80` -> `localhost`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback(name: str) -> bool:
    """`localhost` and its usual aliases, `*.localhost` (RFC 6761: never leaves the machine), 127/8, ::1."""
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _site(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, the port filled in (`http://localhost` is port 80); None when
    it is not an http(s) origin (`null`, from a sandboxed frame or a file:// page)."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.rstrip("."), port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class Guard:
    """The hosts served besides the loopbacks, and the origins allowed besides the request's own."""

    hosts: frozenset[str]
    origins: frozenset[str]

    def host_allowed(self, host: str) -> bool:
        name = host_name(host)
        return is_loopback(name) or name in self.hosts

    def origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().lower().rstrip("/")
        own = _site(f"{request.scheme}://{host}")
        return origin in self.origins or (own is not None and _site(origin) == own)

    def check(self) -> None:
        """Raise JsonError(400/403) for the current request when its Host or Origin is not allowed."""
        host = request.environ.get("HTTP_HOST")
        if host is not None and not self.host_allowed(host):
            raise JsonError(400, "host_not_allowed",
                            f"this service does not answer for the host {host_name(host)!r}: only the loopbacks "
                            "and the hosts in RAICTL_ALLOWED_HOSTS (a page re-pointing its own name at this "
                            "machine is refused)")
        origin = request.headers.get("Origin")
        if origin is not None and request.method not in SAFE_METHODS and not self.origin_allowed(origin, host or ""):
            raise JsonError(403, "cross_origin", f"{request.method} from the web origin {origin[:200]!r} is refused: "
                                                 "only this service's own origin and RAICTL_ALLOWED_ORIGINS may "
                                                 "change anything")


def guard_for(settings: Settings, listen_hosts: Iterable[str], *extra_urls: str | None) -> Guard:
    """The Guard of a service listening on `listen_hosts`: its listen addresses (not wildcards), the
    host names of `extra_urls` (the URL other services are told to call it by) and the settings'
    `allowed_hosts` are served; the settings' `allowed_origins` may send state-changing requests."""
    hosts = {h.lower() for h in listen_hosts if h not in WILDCARDS}
    hosts |= {name for u in extra_urls if u and (name := urlsplit(u).hostname)}
    hosts |= set(settings.allowed_hosts)
    return Guard(frozenset(hosts), frozenset(settings.allowed_origins))


def install(app: Flask, guard: Guard) -> None:
    """Check every request of `app` against `guard` before it is routed (a 404 too: a page must not
    probe which endpoints exist)."""
    app.extensions["request_guard"] = guard
    app.before_request(guard.check)

"""Observations several checks share, each made once per doctor run (memoised on the Context).

They reuse the supervisor's own probes (`probe_listen`, `port_owner`, `service_statuses`) and the
RAI API client's `request`, so doctor sees exactly what `raictl status` and `raictl chat` see.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raictl.errors import RaictlError

if TYPE_CHECKING:
    from raictl.doctor.context import CheckContext
    from raictl.supervisor.probes import ListenResult, PortOwner
    from raictl.supervisor.spec import ServiceSpec
    from raictl.supervisor.status import Overview, ServiceStatus
    from raishared.settings import Settings

HEALTH_TIMEOUT = 1.5  # the RAI API's own health waits up to 1 s for the LLM API's: 0.5 s to spare
SERVICE_NAMES = {"llm_api": "llm-api", "rai_api": "rai-chat-api"}


@dataclass(frozen=True)
class Health:
    """What GET /api/health on a service's first accepting address gave."""

    name: str
    url: str | None
    status: int | None = None
    body: Any = None
    error: str | None = None
    latency_ms: int | None = None

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def base(self) -> str | None:
        """http://HOST:PORT of the address that answered (a built-in's health is under /api/)."""
        return self.url.rsplit("/api/", 1)[0] if self.url else None

    @property
    def doc(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    @property
    def service_matches(self) -> bool:
        """It answers as this service: a built-in names itself; an extra service says only HTTP 200."""
        if self.name not in SERVICE_NAMES:
            return self.status == 200
        return self.doc.get("service") == SERVICE_NAMES[self.name]


class ServicesUnreadable(RaictlError):
    """raictl.toml's services do not load: `config.services` says why; checks that need them skip."""


def read_specs(settings: Settings) -> dict[str, ServiceSpec]:
    """Every service's spec by name; ServicesUnreadable for a bad `[services.NAME]` table."""
    from raictl.supervisor.spec import all_specs

    try:
        return {s.name: s for s in all_specs(settings)}
    except RaictlError as exc:
        raise ServicesUnreadable(exc.message, exc.hint) from None


def specs(ctx: CheckContext) -> dict[str, ServiceSpec]:
    return ctx.memo("specs", lambda: read_specs(ctx.settings), "reading the service specs")


def spec(ctx: CheckContext, name: str) -> ServiceSpec | None:
    return specs(ctx).get(name)


def port_spec(ctx: CheckContext, name: str) -> tuple[ServiceSpec, int]:
    """The spec of a service with a port, and that port: what the port checks are made for."""
    svc = spec(ctx, name)
    if svc is None or not svc.port:
        raise RaictlError(f"{name} has no port in these settings", hint="see config.services")
    return svc, svc.port


def overview(ctx: CheckContext) -> Overview:
    """The supervisor's Overview (`raictl status`): its pid, and every service's status."""
    from raictl.supervisor.status import overview as read_overview

    specs(ctx)  # a bad services table is reported once, by config.services
    return ctx.memo("overview", lambda: read_overview(ctx.settings),
                    "reading the supervisor's state and probing every service")


def statuses(ctx: CheckContext) -> dict[str, ServiceStatus]:
    return {s.name: s for s in overview(ctx).services}


def engine(ctx: CheckContext) -> str | None:
    """The container engine running the services (`compose`, `kubernetes`: RAICTL_CONTAINER, which only
    exported files set), else None: `raictl up` runs them."""
    from raictl.export.container import exported_container

    return exported_container()


def supervised(ctx: CheckContext) -> bool:
    """Whether a raictl supervisor of this home is alive (it restarts what crashes)."""
    return overview(ctx).supervisor_pid is not None


def status(ctx: CheckContext, name: str) -> ServiceStatus | None:
    return statuses(ctx).get(name)


def status_of(ctx: CheckContext, name: str) -> ServiceStatus:
    """The status of a service a check was made for (it is one of the settings' services)."""
    found = status(ctx, name)
    if found is None:
        raise RaictlError(f"{name} is not a service of these settings", hint="see config.services")
    return found


def listen(ctx: CheckContext, host: str, port: int) -> ListenResult:
    from raictl.supervisor.probes import probe_listen

    return ctx.memo(f"listen:{host}:{port}", lambda: probe_listen(host, port), f"connecting to {host} port {port}")


def listening(ctx: CheckContext) -> list[tuple[str, int, int | None]]:
    """(address, port, pid) of every listening TCP socket on this host, read once per run."""
    import psutil

    def read() -> list[tuple[str, int, int | None]]:
        try:
            conns = psutil.net_connections(kind="tcp")
        except psutil.AccessDenied:
            return []
        return [(c.laddr.ip, c.laddr.port, c.pid) for c in conns if c.status == psutil.CONN_LISTEN and c.laddr]
    return ctx.memo("listening", read, "listing the listening sockets")


def bindings(ctx: CheckContext, port: int) -> list[str]:
    """The local addresses sockets listen on for `port` (`0.0.0.0`, `::`, `127.0.0.1`, ...)."""
    return sorted({ip for ip, p, _ in listening(ctx) if p == port})


def owner(ctx: CheckContext, host: str, port: int) -> PortOwner | None:
    """The supervisor's PortOwner of the socket that takes connections for host:port, or None."""
    from raictl.supervisor.probes import covers, describe_pid

    for ip, p, pid in listening(ctx):
        if p == port and covers(ip, host):
            return describe_pid(pid)
    return None


def _fetch_health(ctx: CheckContext, name: str) -> Health:
    from raictl.chat.client import request
    from raishared.settings import base_url

    svc = spec(ctx, name)
    port = svc.port if svc else None
    accepting = [h for h in svc.hosts if listen(ctx, h, port).ok] if svc and port else []
    if not svc or not port or not accepting:
        return Health(name, None, error="nothing accepts on its addresses")
    url = base_url(accepting[0], port) + (svc.health or "/api/health")
    ctx.doing(f"GET {url}")
    start = time.perf_counter()
    try:
        reply = request("GET", url, timeout=HEALTH_TIMEOUT)
    except TimeoutError:
        return Health(name, url, error=f"accepted the connection but sent no answer within {HEALTH_TIMEOUT:g} s")
    except OSError as exc:
        return Health(name, url, error=exc.strerror or str(exc))
    except http.client.HTTPException as exc:  # something answered, but not in HTTP
        return Health(name, url, error=f"answers, but not in HTTP ({type(exc).__name__})")
    return Health(name, url, reply.status, reply.body, latency_ms=int((time.perf_counter() - start) * 1000))


def health(ctx: CheckContext, name: str) -> Health:
    return ctx.memo(f"health:{name}", lambda: _fetch_health(ctx, name), f"asking {name} for its health")


def pythonpath(svc: ServiceSpec, settings: Settings) -> str:
    from raictl.supervisor.process import launch_env

    return launch_env(svc, settings).get("PYTHONPATH", "")

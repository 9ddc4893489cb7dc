"""What `up` says about services it started that run, yet not the way a client will expect.

Not failures (the service is up, and the user may mean it): warnings, printed after the ready
lines. Each is a `Notice(service, message, hint)`.

- A wildcard address (`0.0.0.0`, `::`, `::0`) is the troubleshooting log's root cause: `0.0.0.0`
  takes IPv4 only, so a Node client of `localhost` gets `ECONNREFUSED ::1:6102`; `::` under
  waitress takes IPv6 only. Both loopbacks are probed and the one that refuses is named in the
  words that client shows, with the exposure to the network.
- `LLM_API_URL` pointing where no LLM API answers: the RAI API runs, but every chat fails.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from raictl.supervisor import probes
from raictl.supervisor.spec import ServiceSpec, hosts_setting
from raishared.settings import LOOPBACKS, Settings, host_port


@dataclass(frozen=True)
class Notice:
    service: str
    message: str
    hint: str | None = None


def is_wildcard(host: str) -> bool:
    """`0.0.0.0`, `::` or any other spelling of an unspecified address (`::0`, `0:0::0`)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def probed_hosts(hosts: tuple[str, ...] | list[str]) -> list[str]:
    """The addresses to probe for a service listening on `hosts`: each one, a wildcard replaced by
    both loopbacks (what a client of `localhost` dials), without repeats."""
    found: list[str] = []
    for host in hosts:
        for one in (LOOPBACKS if is_wildcard(host) else (host,)):
            if one not in found:
                found.append(one)
    return found


def wildcard_notice(spec: ServiceSpec) -> Notice | None:
    """The warning for a service bound to a wildcard (probing both loopbacks now), else None."""
    wild = [h for h in spec.hosts if is_wildcard(h)]
    if not wild or not spec.port:
        return None
    refused = [h for h in LOOPBACKS if not probes.probe_listen(h, spec.port).ok]
    exposed = f"{', '.join(host_port(h, spec.port) for h in wild)} takes connections from the network, not only this machine"
    said = "; ".join(f"a client of localhost gets ECONNREFUSED {h}:{spec.port}" for h in refused)  # Node's words
    message = (f"{said}: nothing listens there; and {exposed}" if refused else exposed)
    return Notice(spec.name, message, f"bind both loopbacks, the default: {hosts_setting(spec.name)}, "
                                      f"then `raictl restart {spec.name}`")


def llm_url_notice(settings: Settings) -> Notice | None:
    """A warning when the RAI API's LLM_API_URL has no LLM API behind it, else None."""
    from urllib.parse import urlsplit

    url = settings.llm_api_url
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    if parts.scheme != "http" or host not in ("localhost", *LOOPBACKS):  # a remote one is not probed from `up`
        return None
    health = probes.probe_health(host, port, parts.path.rstrip("/") + "/api/health")
    if health.status is not None:  # something answers HTTP: which service it is, doctor's wiring.live says
        return None
    source = settings.sources.get("llm_api_url", "default")
    return Notice("rai_api", f"it calls LLM_API_URL={url} ({source}), where no LLM API answers ({health.detail}): "
                             f"every chat will fail", "unset LLM_API_URL to use the LLM API raictl runs "
                                                      "(`raictl doctor wiring` compares them)")


def after_up(settings: Settings, specs: list[ServiceSpec], ready: list[str]) -> list[Notice]:
    """Every warning about the services of `specs` that are ready."""
    notices = [wildcard_notice(s) for s in specs if s.name in ready]
    if "rai_api" in ready:
        notices.append(llm_url_notice(settings))
    return [n for n in notices if n is not None]

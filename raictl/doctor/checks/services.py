"""Per-service checks: running, who holds the port, each loopback, `localhost`, health (log steps 0-5, 12, 26).

For each service NAME, built-in or an extra `[services.NAME]` of raictl.toml: `NAME.running`, and when
it has a port `NAME.port`, `NAME.listen.ipv4`, `NAME.listen.ipv6`, `NAME.localhost`, and when it has a
health path `NAME.health` (an extra service's health is healthy on HTTP 200). A refused address is explained by the binding that causes it:
`0.0.0.0` takes no IPv6 (the log's `ECONNREFUSED ::1:6102`), `::` under waitress takes no IPv4.
The listen checks judge the configured addresses first, running or not: a wildcard fails (it leaves the
other family's loopback unserved and exposes the service to the network), a list without one loopback warns.
A process on the port that another raictl home's supervisor started gets the hint `raictl up` gives.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import psutil

from raictl.doctor import observe
from raictl.doctor.checks.host import localhost_addresses
from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, ServiceCheck, service_checks
from raictl.supervisor.advice import is_wildcard
from raictl.supervisor.spec import BUILTINS, hosts_setting, hosts_var, port_setting
from raictl.supervisor.states import BACKOFF, FATAL, RUNNING, STARTING, STOPPED, UNHEALTHY
from raishared.settings import host_port

if TYPE_CHECKING:
    from raictl.supervisor.identity import ExitInfo
    from raictl.supervisor.probes import PortOwner
    from raictl.supervisor.spec import ServiceSpec
    from raictl.supervisor.status import ServiceStatus


STOP_SIGNALS = ("SIGTERM", "SIGINT")  # how `raictl down` and Ctrl-C end a service: not a crash


def _crash(status: ServiceStatus) -> ExitInfo | None:
    """The last exit when it was a crash (an exit code, or a signal other than a stop request), or a
    restart for failing liveness; not when raictl stopped it (`down`, `restart`)."""
    last = status.last_exit
    if last is None or last.cause not in (None, "liveness"):
        return None
    return None if last.signal in STOP_SIGNALS and last.cause is None else last


def _exit_text(status: ServiceStatus) -> str:
    last = _crash(status)
    if last is None:
        return ""
    when = time.strftime("%H:%M:%S", time.localtime(last.at)) if last.at else "?"
    return f"; last exit: {last.describe()} at {when}"


def restarts(n: int) -> str:
    return f"{n} restart" + ("" if n == 1 else "s")


def other_home(ctx: CheckContext, name: str) -> tuple[PortOwner, str] | None:
    """(port owner, its RAICTL_HOME) when the process on the service's port was started by the supervisor
    of a raictl home other than this one (`raictl up` recognises it the same way), else None."""
    from raictl.supervisor.preflight import raictl_home_of

    svc = observe.spec(ctx, name)
    if svc is None or not svc.port:
        return None
    for host in svc.hosts:
        who = observe.owner(ctx, host, svc.port)
        if who is not None and who.pid:
            home = raictl_home_of(who.pid)
            if home is not None and home != str(ctx.settings.home):
                return who, home
    return None


def _other_home_hint(name: str, home: str) -> str:
    return (f"a service of another raictl home (its supervisor restarts a killed one): "
            f"`RAICTL_HOME={home} raictl down` stops it, then `raictl up {name}`")


def running(ctx: CheckContext, name: str) -> Result:
    st = observe.status_of(ctx, name)
    tail = _exit_text(st)
    if st.state == RUNNING:
        summary = f"running, pid {st.pid}, up {st.uptime_s:.0f} s, {restarts(st.restarts)}{tail}"
        if not observe.supervised(ctx):  # its supervisor was killed: the next crash goes unnoticed
            return ctx.warn(f"{summary}; but no raictl supervisor watches it: a crash would not be restarted",
                            hint="`raictl up` starts a supervisor, which adopts it without restarting it")
        crash = _crash(st)
        if st.restarts or (crash and crash.signal):
            return ctx.warn(summary, hint=f"`raictl logs {name}` shows why it exited")
        return ctx.ok(summary)
    if st.state == UNHEALTHY:  # stopped by SIGSTOP, or failing its liveness probe
        why = st.health.detail if st.pid and not st.health.ok else (st.reason or "failing its liveness probe")
        return ctx.fail(f"unhealthy, pid {st.pid}: {why}",
                        hint=f"`raictl restart {name}` (`raictl doctor --fix` offers it); the supervisor restarts "
                             f"it itself once its liveness threshold passes")
    if st.state in (STARTING, BACKOFF, FATAL):
        return _in_trouble(ctx, name, st, tail)
    health, engine = observe.health(ctx, name), observe.engine(ctx)
    if health.answered and health.service_matches and engine:
        return ctx.ok(f"run by {engine}, not by a raictl supervisor: {health.url} answers as "
                      f"{observe.SERVICE_NAMES.get(name, name)}")
    if health.answered and health.service_matches:
        other = other_home(ctx, name)
        if other is not None:
            return ctx.warn(f"not started by this raictl home, yet {health.url} answers as "
                            f"{observe.SERVICE_NAMES.get(name, name)}: pid {other[0].pid} of RAICTL_HOME={other[1]}",
                            hint=_other_home_hint(name, other[1]))
        return ctx.warn(f"not started by raictl, yet {health.url} answers as {observe.SERVICE_NAMES.get(name, name)}",
                        hint=f"stop the process started by hand (see {name}.port), then `raictl up {name}`")
    return ctx.fail(f"not running{tail}", hint=f"raictl up {name}")


def _in_trouble(ctx: CheckContext, name: str, st: ServiceStatus, tail: str) -> Result:
    """The supervisor is (re)starting it, waiting to, or gave up."""
    if st.state == STARTING:
        return ctx.warn(f"starting (not ready yet), {restarts(st.restarts)}{tail}",
                        hint=f"run doctor again in a moment; `raictl logs {name}` shows its progress")
    if st.state == BACKOFF:
        return ctx.fail(f"crashed and waiting to be restarted ({restarts(st.restarts)}){tail}",
                        hint=f"`raictl logs {name}` shows why; see logs.{name}", details=st.log_tail or ())
    reason = "" if not st.reason or st.reason in tail else f": {st.reason}"  # often the last exit itself
    return ctx.fail(f"gave up after repeated crashes{reason}{tail}",
                    hint=f"fix the cause (`raictl logs {name}`), then `raictl restart {name}`",
                    details=st.log_tail or ())


def _ours(st: ServiceStatus, pid: int | None) -> bool:
    if st.pid is None or pid is None:
        return False
    try:
        return pid == st.pid or pid in {p.pid for p in psutil.Process(st.pid).children(recursive=True)}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def port(ctx: CheckContext, name: str) -> Result:
    (svc, number), st = observe.port_spec(ctx, name), observe.status_of(ctx, name)
    held = [(h, observe.owner(ctx, h, number)) for h in svc.hosts]
    foreign = [(h, o) for h, o in held if o is not None and not _ours(st, o.pid)]
    if not foreign:
        taken = [h for h, o in held if o is not None]
        return ctx.ok(f"port {number} is held by raictl's {name}" if taken else f"port {number} is free")
    host, who = foreign[0]
    holder = who.describe()  # one line, cut at a word
    health = observe.health(ctx, name)
    if health.service_matches and observe.engine(ctx):
        return ctx.ok(f"port {svc.port} is held by {name} ({holder}), run by {observe.engine(ctx)}")
    other = other_home(ctx, name)
    if other is not None:  # a warning, like a copy started by hand, when it is this very service
        found = ctx.warn if health.service_matches and st.state != RUNNING else ctx.fail
        return found(f"port {svc.port} on {host} is held by {holder}, a service of another raictl home "
                     f"(RAICTL_HOME={other[1]})", hint=_other_home_hint(name, other[1]))
    if health.service_matches and st.state != RUNNING:
        return ctx.warn(f"port {svc.port} is held by {holder}, a {name} not started by raictl",
                        hint=f"stop it (kill {who.pid}), then `raictl up {name}`")
    return ctx.fail(f"port {number} on {host} is held by {holder}, not by raictl's {name}",
                    hint=f"stop that process (kill {who.pid}) or move {name} with {port_setting(name)}")


def explain_refusal(host: str, bound: list[str]) -> str:
    """Why `host` refuses while the port is bound elsewhere: name the binding that causes it."""
    if not bound:
        return "nothing listens on the port"
    if ":" in host and "0.0.0.0" in bound:
        return "it listens on 0.0.0.0, which takes IPv4 only (the log's ECONNREFUSED ::1)"
    if ":" not in host and "::" in bound:
        return "it listens on [::] with IPV6_V6ONLY (waitress sets it), which refuses IPv4"
    return f"it listens only on {', '.join(bound)}"


def bind_hint(name: str, svc: ServiceSpec, host: str) -> str:
    """What makes `host` accept: add it to the service's addresses, or make what listens honour them."""
    if host not in svc.hosts:
        return f"bind both loopbacks: {hosts_setting(name)}, then `raictl restart {name}`"
    if name in BUILTINS:  # raictl binds every configured address itself
        return (f"{hosts_setting(name, ','.join(svc.hosts))} already includes {host}: what listens was started "
                f"another way or with older settings (see {name}.port); `raictl restart {name}`")
    return (f"[services.{name}] lists {host}, but its command does not listen there: make it bind every address "
            f"in hosts (or drop {host} from hosts)")


def not_running(ctx: CheckContext, name: str) -> Result | None:
    """A skip Result when the service is stopped and nothing at all listens on its port, else None."""
    _, number = observe.port_spec(ctx, name)
    if observe.status_of(ctx, name).state == STOPPED and not observe.bindings(ctx, number):
        return ctx.skip(f"{name} is not running (see {name}.running)")
    return None


def hosts_finding(ctx: CheckContext, name: str, svc: ServiceSpec, number: int, host: str) -> Result | None:
    """A Result when the configured addresses themselves leave the loopback `host` unserved or bind its
    family's wildcard (found from the settings alone, running or not), else None.

    A wildcard fails: `0.0.0.0` takes IPv4 only (the log's ECONNREFUSED ::1), `::` under waitress IPv6
    only, and both expose the service to the network. A list that merely leaves a loopback out warns.
    In a container an exported file runs, a wildcard is how the service must listen: the probe decides.
    """
    setting = hosts_setting(name, ",".join(svc.hosts))
    what = "the API" if name in BUILTINS else name
    wildcards = [h for h in svc.hosts if is_wildcard(h)]  # `::0` and any other spelling of `::` too
    v4, v6 = [w for w in wildcards if ":" not in w], [w for w in wildcards if ":" in w]
    family = "IPv6" if ":" in host else "IPv4"
    same = v6 if family == "IPv6" else v4  # the wildcard of this loopback's family, if bound
    in_engine = observe.engine(ctx) is not None
    if in_engine and same:
        return None
    exposed = f"exposes {what} to the network" if wildcards and not in_engine else ""
    hint = (f"bind both loopbacks, the default: {hosts_setting(name)}"
            + (f" (or unset {hosts_var(name)})" if name in BUILTINS else "") + f", then `raictl restart {name}`")
    if same:
        return ctx.fail(f"{setting} binds {same[0]}, every {family} interface: it {exposed}", hint=hint)
    if host in svc.hosts:
        return None
    refused = f"a client of {host_port(host, number)} is refused"
    if v4 and family == "IPv6":
        why = f"binds {v4[0]}, which takes IPv4 only: {refused} (the log's ECONNREFUSED ::1)"
    elif v6 and family == "IPv4" and name in BUILTINS:
        why = f"binds {v6[0]}, which takes IPv6 only (waitress sets IPV6_V6ONLY): {refused}"
    else:
        why = (f"leaves {host} out: {refused}, as is one of localhost that tries {host} first"
               + (" (the log's ECONNREFUSED ::1)" if host == "::1" else ""))
    if exposed:
        return ctx.fail(f"{setting} {why}; and it {exposed}", hint=hint)
    return ctx.warn(f"{setting} {why}", hint=hint)


def listen(ctx: CheckContext, name: str, host: str) -> Result:
    svc, number = observe.port_spec(ctx, name)
    finding = hosts_finding(ctx, name, svc, number, host) or not_running(ctx, name)
    if finding is not None:
        return finding
    probe = observe.listen(ctx, host, number)
    shown = host_port(host, number)
    if probe.ok:
        return ctx.ok(f"{shown} accepts")
    bound = observe.bindings(ctx, number)
    return ctx.fail(f"{shown} refuses ({probe.detail}): {explain_refusal(host, bound)}",
                    hint=bind_hint(name, svc, host))


def localhost(ctx: CheckContext, name: str) -> Result:
    svc, number = observe.port_spec(ctx, name)
    skipped = not_running(ctx, name)
    if skipped:
        return skipped
    order = localhost_addresses(number)
    if not order:
        return ctx.fail("localhost does not resolve", hint="see host.localhost")
    refused = [a for a in order if not observe.listen(ctx, a, number).ok]
    if not refused:
        return ctx.ok(f"http://localhost:{number} works: {', '.join(order)} all accept")
    bound = observe.bindings(ctx, number)
    if not bound:
        return ctx.fail(f"http://localhost:{number} is refused on every address ({', '.join(order)})",
                        hint=f"see {name}.running and {name}.listen.*")
    addr = refused[0]
    problem = f"gets ECONNREFUSED {host_port(addr, number)}: {explain_refusal(addr, bound)}"
    fix = bind_hint(name, svc, refused[0])
    if addr == order[0]:
        return ctx.fail(f"a client of http://localhost:{number} tries {addr} first and {problem}", hint=fix)
    return ctx.warn(f"a client of http://localhost:{number} that picks {addr} {problem}", hint=fix)


def health_check(ctx: CheckContext, name: str) -> Result:
    h = observe.health(ctx, name)
    if not h.answered:
        skipped = not_running(ctx, name)
        if skipped:
            return skipped
        return ctx.fail(f"{h.url or name}: {h.error}",
                        hint=f"the process on the port is hung or is not {name}: see {name}.port, "
                             f"`raictl restart {name}`")
    if name not in observe.SERVICE_NAMES:
        return _extra_health(ctx, name, h)
    expected = observe.SERVICE_NAMES[name]
    if not h.doc:
        return ctx.fail(f"{h.url} answers HTTP {h.status} but not JSON: not raictl's {name}",
                        hint=f"see {name}.port for the process holding the port")
    if not h.service_matches:
        return ctx.fail(f"{h.url} answers as {h.doc.get('service')!r}, not {expected!r}: the ports are crossed",
                        hint=f"check {port_setting(name)} against the other service's port")
    fields = ", ".join(f"{k}={v}" for k, v in h.doc.items() if k not in ("service",) and v is not None)
    if h.status != 200 or h.doc.get("status") != "ok":
        return ctx.warn(f"HTTP {h.status} in {h.latency_ms} ms: {fields}", hint=f"see the checks below and logs.{name}")
    return ctx.ok(f"HTTP 200 in {h.latency_ms} ms: {fields}")



def _extra_health(ctx: CheckContext, name: str, h: observe.Health) -> Result:
    """An extra service declares only a health path: HTTP 200 there is healthy."""
    if h.status == 200:
        return ctx.ok(f"{h.url}: HTTP 200 in {h.latency_ms} ms")
    return ctx.fail(f"{h.url} answers HTTP {h.status}, not 200",
                    hint=f"`raictl logs {name}`; check `health` in [services.{name}]")


def _has_port(spec: ServiceSpec) -> bool:
    return bool(spec.port)


service_checks("services", [
    ServiceCheck("{name}.running", "{name} running", running),
    ServiceCheck("{name}.port", "{name} port held by raictl", port, _has_port),
    ServiceCheck("{name}.listen.ipv4", "{name} listens on 127.0.0.1", lambda ctx, n: listen(ctx, n, "127.0.0.1"),
                 _has_port),
    ServiceCheck("{name}.listen.ipv6", "{name} listens on ::1", lambda ctx, n: listen(ctx, n, "::1"), _has_port),
    ServiceCheck("{name}.localhost", "{name} reachable as localhost", localhost, _has_port),
    ServiceCheck("{name}.health", "{name} health answers", health_check, lambda spec: bool(spec.port and spec.health)),
], BUILTINS)

"""Host checks: the IPv6 loopback, what `localhost` means here, net.ipv6.bindv6only (log steps 0, 4, 26), and
whether this is a container an exported file runs (`host.container`).

`localhost_addresses()` is the order a client tries `localhost` in: the system resolver's answer
(getaddrinfo). With `RAICTL_HOSTS_FILE=PATH` doctor reads that hosts file instead of /etc/hosts and
orders its `localhost` addresses as glibc's getaddrinfo does (RFC 6724: reachable first, then `::1`
before IPv4), so what a machine whose /etc/hosts maps `localhost` to `::1` first would see can be checked
from any machine.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from pathlib import Path

from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, check

SYSTEM_HOSTS_FILE = Path("/etc/hosts")
HOSTS_FILE_VAR = "RAICTL_HOSTS_FILE"
BINDV6ONLY = Path("/proc/sys/net/ipv6/bindv6only")


def hosts_file() -> Path:
    """The hosts file doctor reads: $RAICTL_HOSTS_FILE, else /etc/hosts."""
    return Path(os.environ.get(HOSTS_FILE_VAR) or SYSTEM_HOSTS_FILE)


def _rank(address: str) -> tuple[bool, int]:
    """How glibc sorts getaddrinfo's answers (RFC 6724): reachable first (rule 1: it asks the kernel for
    a source address with a UDP connect, which sends nothing), then precedence: ::1 50, IPv6 40, IPv4 35."""
    ip = ipaddress.ip_address(address.split("%")[0])
    try:
        with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 9))
        usable = True
    except OSError:
        usable = False
    precedence = 35 if ip.version == 4 else 50 if ip == ipaddress.IPv6Address("::1") else 40
    return usable, precedence


def _resolve_system(port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    seen: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    return True


def localhost_addresses(port: int = 0) -> list[str]:
    """The addresses `localhost` resolves to, in the order a client tries them."""
    if not os.environ.get(HOSTS_FILE_VAR):
        return _resolve_system(port)
    try:
        addresses = [addr for _, addr in hosts_file_entries(hosts_file())]
    except OSError:
        return []
    unique = [a for a in dict.fromkeys(addresses) if _is_ip(a)]  # a resolver skips a malformed line too
    return sorted(unique, key=_rank, reverse=True)  # stable: file order within a precedence


def hosts_file_entries(path: Path, name: str = "localhost") -> list[tuple[int, str]]:
    """(line number, address) of every line of /etc/hosts that maps `name`."""
    entries = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and name in fields[1:]:
            entries.append((number, fields[0]))
    return entries


@check("host.ipv6_loopback", "IPv6 loopback available", needs_settings=False)
def ipv6_loopback(ctx: CheckContext) -> Result:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            return ctx.fail(f"::1 cannot be bound here ({exc.strerror}): IPv6 is off on the loopback",
                            hint="enable it (sysctl net.ipv6.conf.lo.disable_ipv6=0), or set "
                                 "RAI_API_HOSTS=127.0.0.1 and LLM_API_HOSTS=127.0.0.1 and use 127.0.0.1 in clients")
        raise
    return ctx.ok("::1 can be bound")


@check("host.localhost", "/etc/hosts maps localhost", needs_settings=False)
def localhost_mapping(ctx: CheckContext) -> Result:
    order, path = localhost_addresses(), hosts_file()
    try:
        entries = hosts_file_entries(path)
    except OSError as exc:
        return ctx.warn(f"{path} cannot be read ({exc.strerror}); localhost -> {', '.join(order) or 'nothing'}")
    details = [f"{path}:{n}: {addr} localhost" for n, addr in entries]
    if not order:
        return ctx.fail("localhost does not resolve", hint=f"add `127.0.0.1 localhost` and `::1 localhost` to {path}")
    foreign = [a for a in order if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if foreign:
        return ctx.fail(f"localhost resolves to {', '.join(foreign)}, which is not a loopback address",
                        hint=f"map localhost to 127.0.0.1 and ::1 in {path}", details=details)
    if not entries:
        return ctx.warn(f"{path} does not map localhost (the resolver answers {', '.join(order)})",
                        hint=f"add `127.0.0.1 localhost` and `::1 localhost` to {path}", details=details)
    return ctx.ok(f"localhost -> {', '.join(order)} (a client tries them in this order)", details=details)


@check("host.bindv6only", "net.ipv6.bindv6only", needs_settings=False)
def bindv6only(ctx: CheckContext) -> Result:
    try:
        value = BINDV6ONLY.read_text().strip()
    except OSError:
        return ctx.skip("net.ipv6.bindv6only is not available on this system")
    if value == "1":
        return ctx.ok("1: a listener on `::` takes IPv6 only; raictl binds 127.0.0.1 and ::1 explicitly, so "
                      "this does not matter to it")
    return ctx.ok(f"{value}: a listener on `::` also takes IPv4 unless it sets IPV6_V6ONLY (waitress does); "
                  "raictl binds 127.0.0.1 and ::1 explicitly")


@check("host.container", "container or laptop", needs_settings=False)
def container(ctx: CheckContext) -> Result:
    from raictl.export.container import CONTAINER_VAR, container_traces, exported_container

    engine, traces = exported_container(), container_traces()
    if engine:
        return ctx.ok(f"in a container run by {engine} ({CONTAINER_VAR}={engine}, set by `raictl export`): the engine "
                      "runs the services and they listen on every address on purpose")
    if traces:
        return ctx.ok(f"in a container ({', '.join(traces)}) that `raictl export` did not make: services that "
                      "`raictl up` runs here are judged as on a laptop")
    return ctx.ok("not in a container")


HOME_FREE_WARN, HOME_FREE_FAIL = 100 * 2**20, 10 * 2**20


def _existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (a fresh <home> is created on first use)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@check("host.home", "raictl home writable, with free space")
def home_writable(ctx: CheckContext) -> Result:
    """<home> holds the state, logs, backups, credentials and the SQLite database: a read-only or full
    one breaks `up`, `chat` and every write of the RAI API (issue 13)."""
    import shutil
    import tempfile

    home = ctx.settings.home
    where = _existing(home)
    try:
        with tempfile.TemporaryDirectory(dir=where, prefix=".raictl-doctor-"):
            pass
    except OSError as exc:
        return ctx.fail(f"{home} is not writable: {exc.strerror or exc} (at {where})",
                        hint="point RAICTL_HOME at a writable folder, or remount/fix the permissions of this one")
    free = shutil.disk_usage(where).free
    shown = f"{free / 2**20:,.0f} MiB free"
    if free < HOME_FREE_FAIL:
        return ctx.fail(f"{home} has only {shown}: logs, backups and the SQLite database need room",
                        hint="free some space there, or point RAICTL_HOME at a roomier disk")
    if free < HOME_FREE_WARN:
        return ctx.warn(f"{home} has only {shown}", hint="free some space before it fills up")
    return ctx.ok(f"{home} is writable, {shown}")

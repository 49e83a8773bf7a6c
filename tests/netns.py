"""Hosts on a virtual network, for tests of nodes on separate machines.

:class:`VirtualLan` makes, as root, a Linux bridge in the root namespace (which
carries the shared services' address, ``.1``) and a few network namespaces,
each a "host" with one address (``.11``, ``.12``, ...) on a veth pair whose
other end is on the bridge. A process started in a host (:meth:`Host.command`)
sees only that host's address and reaches the services and the other hosts
through the bridge; the test process, in the root namespace, reaches the hosts
the same way.

Names carry a random suffix and the /24 is a random one of 10.213.0.0/16 that
nothing on the machine routes yet, so that runs side by side never meet.
:meth:`VirtualLan.close` removes everything it made: the processes left in
its namespaces, the namespaces (which takes their veth ends, and so the
pairs) and the bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rtserver.config import Settings
from tests.servers import ProcessNode

# The networks to choose from; each LAN takes one /24 of it.
POOL = ipaddress.ip_network("10.213.0.0/16")


class NetnsUnavailable(Exception):
    """Namespaces cannot be made here (not root, no ``ip``, or ``ip netns add`` fails)."""


def ip(*args: str) -> str:
    """Run ``ip`` with these arguments; its output. RuntimeError (with stderr) on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def routed_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the machine routes or has an address in (default routes aside)."""
    out: list[ipaddress.IPv4Network] = []
    for route in json.loads(ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        dst = route.get("dst", "default")
        if dst == "default":
            continue
        with contextlib.suppress(ValueError):
            out.append(ipaddress.IPv4Network(dst, strict=False))
    for link in json.loads(ip("-j", "-4", "addr", "show") or "[]"):
        for a in link.get("addr_info", []):
            out.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return out


@dataclass(frozen=True)
class Host:
    """One network namespace with one address on the LAN."""

    namespace: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace, *argv]


class VirtualLan:
    """A bridge with the services' address and ``hosts`` namespaces on veth pairs."""

    def __init__(self, hosts: int) -> None:
        self.tag = secrets.token_hex(3)
        self.bridge = f"rtmh{self.tag}"
        self.namespaces: list[str] = []
        self.hosts: list[Host] = []
        self.network = ipaddress.IPv4Network("0.0.0.0/32")
        self.count = hosts

    @property
    def gateway(self) -> str:
        """The bridge's address in the root namespace: where the shared services listen."""
        return str(self.network.network_address + 1)

    def open(self) -> None:
        """Make the namespaces, the bridge and the links; NetnsUnavailable if namespaces
        cannot be made here, RuntimeError if something else fails (after cleaning up)."""
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root (ip netns add)")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("no `ip` command (iproute2)")
        first = f"rtmh-{self.tag}-0"
        try:
            ip("netns", "add", first)
        except RuntimeError as exc:
            raise NetnsUnavailable(f"cannot make a network namespace: {exc}") from None
        self.namespaces.append(first)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _pick_network(self) -> ipaddress.IPv4Network:
        taken = routed_networks()
        free = [n for n in POOL.subnets(new_prefix=24) if not any(n.overlaps(t) for t in taken)]
        if not free:
            raise RuntimeError(f"every /24 of {POOL} is routed already")
        return random.choice(free)

    def _build(self) -> None:
        for i in range(1, self.count):
            name = f"rtmh-{self.tag}-{i}"
            ip("netns", "add", name)
            self.namespaces.append(name)
        ip("link", "add", self.bridge, "type", "bridge")
        self.network = self._pick_network()
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        # Another run may have chosen the same /24 at the same moment: then the
        # machine routes it through two bridges, and this run gives up.
        routes = json.loads(ip("-j", "-4", "route", "show", str(self.network)) or "[]")
        if [r.get("dev") for r in routes] != [self.bridge]:
            raise RuntimeError(f"{self.network} is routed elsewhere too: {routes}")
        for i, ns in enumerate(self.namespaces):
            outside, inside = f"{self.bridge}v{i}", f"{self.bridge}p{i}"
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", outside, "master", self.bridge)
            ip("link", "set", outside, "up")
            address = str(self.network.network_address + 11 + i)
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
            ip("-n", ns, "link", "set", inside, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            self.hosts.append(Host(ns, address))

    def close(self) -> None:
        """Remove everything made: processes left in the namespaces, the namespaces
        (and with them every veth pair), the bridge. Safe to call twice."""
        for i, ns in enumerate(self.namespaces):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                for pid in ip("netns", "pids", ns).split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            # The veth pair first, by its outside end: the kernel removes what a
            # deleted namespace held later, in the background.
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                ip("link", "delete", f"{self.bridge}v{i}")
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                ip("netns", "delete", ns)
        self.namespaces = []
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            ip("link", "delete", self.bridge)
        self.hosts = []

    def leftovers(self) -> list[str]:
        """Names of this LAN's namespaces and links that still exist (none after close)."""
        names = [ns["name"] for ns in json.loads(ip("-j", "netns", "list") or "[]")]
        links = [link["ifname"] for link in json.loads(ip("-j", "link", "show") or "[]")]
        return [n for n in names + links if n.startswith((f"rtmh-{self.tag}-", self.bridge))]


class HostNode(ProcessNode):
    """An rtserver process in one host of a :class:`VirtualLan`, on that host's address."""

    def __init__(self, host: Host, settings: Settings, log_path: Path) -> None:
        super().__init__(settings, log_path)
        self.host = host

    def argv(self) -> list[str]:
        """``ip netns exec <host> python -m rtserver serve ...``."""
        return self.host.command(super().argv())

"""Who is asking: the client address of a request, with opt-in trust of reverse proxies."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable

import attrs

from rbee_hive_http_middleware._asgi import Scope, header_values

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The address reported when the server gives no peer (a Unix socket, a test).
UNKNOWN_CLIENT = "unknown"
_MAX_FORWARDED_BYTES = 4096


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _to_networks(values: Iterable[str | _Network]) -> tuple[_Network, ...]:
    networks: list[_Network] = []
    for value in values:
        if isinstance(value, str):
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError as err:
                raise ValueError(
                    f"trusted_proxies entry {value!r} is not an IP address or network "
                    "(examples: '10.0.0.5', '10.0.0.0/8', '::1')"
                ) from err
        else:
            networks.append(value)
    return tuple(networks)


@attrs.frozen
class TrustedProxies:
    """Reverse proxies whose ``X-Forwarded-For`` is believed; empty (the default) trusts none."""

    networks: tuple[_Network, ...] = attrs.field(default=(), converter=_to_networks)

    def _trusted(self, address: str) -> bool:
        ip = _parse_ip(address)
        return ip is not None and any(ip in net for net in self.networks)

    def client_address(self, scope: Scope) -> str:
        """The client's address: the ASGI peer, or the forwarded client behind trusted proxies.

        ``X-Forwarded-For`` is read only when the peer itself is a trusted proxy; it is walked
        from the right, skipping trusted proxies, and the first other valid address wins. A
        malformed header is ignored and the peer address is used.
        """
        client = scope.get("client")
        peer = str(client[0]) if client else UNKNOWN_CLIENT
        if not self.networks or not self._trusted(peer):
            return peer
        values = header_values(scope, b"x-forwarded-for")
        raw = b",".join(values)
        if not raw or len(raw) > _MAX_FORWARDED_BYTES:
            return peer
        hops = raw.decode("latin-1").split(",")
        nearest = peer
        for hop in reversed(hops):
            ip = _parse_ip(hop)
            if ip is None:
                return nearest
            nearest = str(ip)
            if not any(ip in net for net in self.networks):
                return nearest
        return nearest  # every hop is a trusted proxy: the leftmost is the origin


def client_address(scope: Scope, trusted_proxies: TrustedProxies | None = None) -> str:
    """The client address of an ASGI request (``"unknown"`` when the server gives none)."""
    return (trusted_proxies or TrustedProxies()).client_address(scope)


def _trusted_network(value: str | _Network) -> _Network:
    if isinstance(value, str):
        try:
            network = ipaddress.ip_network(value.strip(), strict=True)
        except ValueError as err:
            loose = None
            with contextlib.suppress(ValueError):
                loose = ipaddress.ip_network(value.strip(), strict=False)
            hint = f"; did you mean {loose}?" if loose is not None else ""
            raise ValueError(
                f"trusted_networks entry {value!r} is not a network in CIDR form such as "
                f"'10.0.0.0/8', '192.168.1.0/24' or 'fd00::/8'{hint}"
            ) from err
    else:
        network = value
    if network.prefixlen == 0:
        raise ValueError(
            f"trusted_networks entry {str(network)!r} admits every address, which is the same as "
            "no authentication; list the networks your queen-rbee and operators use, or "
            "configure an API token"
        )
    return network


def _to_trusted_networks(values: Iterable[str | _Network]) -> tuple[_Network, ...]:
    if isinstance(values, str):
        raise TypeError("trusted_networks must be a list of networks, not one string")
    return tuple(_trusted_network(value) for value in values)


@attrs.frozen
class TrustedNetworks:
    """Networks whose clients may call the API without a token: an explicit, logged opt-in.

    Each entry is a network in CIDR form (a bare address is a /32 or /128); ``0.0.0.0/0`` and
    ``::/0`` are refused. Membership is decided on the TCP peer address, never on a header.
    An IPv4-mapped IPv6 peer (``::ffff:10.0.0.5`` on a dual-stack socket) counts as its IPv4
    address.
    """

    networks: tuple[_Network, ...] = attrs.field(default=(), converter=_to_trusted_networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __str__(self) -> str:
        return ", ".join(str(network) for network in self.networks) or "none"

    def network_of(self, address: str) -> _Network | None:
        """The first trusted network holding ``address``, or None (also for non-IP text)."""
        ip = _parse_ip(address)
        if ip is None:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return next((network for network in self.networks if ip in network), None)

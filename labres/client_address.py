"""The address a request came from: the one function the sign-in limits, the API throttles and
the logs use, so a header anyone can write never decides who is who.

X-Forwarded-For is believed only as far as our own proxies (settings.TRUSTED_PROXIES) wrote it:
read from the right, each hop a trusted proxy added names the one before it; the first address
that is not a trusted proxy is the client. With no trusted proxies (the default) it is
REMOTE_ADDR, whatever the header says.
"""
import ipaddress

from django.conf import settings


def client_address(request):
    """The client's IP address as text ('' if the server did not say)."""
    address = _parse(request.META.get("REMOTE_ADDR", ""))
    if address is None:
        return request.META.get("REMOTE_ADDR", "")
    proxies = trusted_networks()
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    while hops and any(address in network for network in proxies):
        before = _parse(hops.pop())
        if before is None:  # not an address: what the proxy received is all we know
            break
        address = before
    return str(address)


def trusted_networks(values=None):
    """settings.TRUSTED_PROXIES (addresses or networks, e.g. 10.0.0.5, 10.1.0.0/16) as networks."""
    values = settings.TRUSTED_PROXIES if values is None else values
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()]


def _parse(text):
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket (::ffff:192.0.2.1) is that IPv4 client.
    return getattr(address, "ipv4_mapped", None) or address

"""labres.client_address: X-Forwarded-For counts only as far as our own proxies wrote it."""
from django.test import RequestFactory

from labres.client_address import client_address

from .test_settings import run_django_setup


def request(remote, forwarded=None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []

    assert client_address(request("203.0.113.9", "192.0.2.1")) == "203.0.113.9"


def test_the_header_is_read_back_to_the_first_hop_that_is_not_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    # The client wrote the first entry itself; 10.0.0.9 is our inner proxy.
    forged = request("10.0.0.5", "6.6.6.6, 198.51.100.7, 10.0.0.9")

    assert client_address(forged) == "198.51.100.7"


def test_a_request_from_outside_the_proxies_is_its_own_address(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_address(request("203.0.113.9", "10.0.0.1")) == "203.0.113.9"


def test_a_hop_that_is_not_an_address_stops_the_walk(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]

    assert client_address(request("10.0.0.1", "not-an-address")) == "10.0.0.1"


def test_only_proxies_in_the_header_means_the_last_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_address(request("10.0.0.1", "10.0.0.2")) == "10.0.0.2"


def test_an_ipv4_client_seen_through_ipv6_is_the_ipv4_client(settings):
    settings.TRUSTED_PROXIES = []

    assert client_address(request("::ffff:192.0.2.1")) == "192.0.2.1"


def test_a_trusted_proxy_that_is_not_an_address_refuses_to_start():
    result = run_django_setup(SECRET_KEY="x", TRUSTED_PROXIES="10.0.0.1,proxy.example.org")

    assert result.returncode != 0
    assert "TRUSTED_PROXIES: 'proxy.example.org' is not an address or a network" in result.stderr

"""Rate limits read from settings on each request (DRF's own classes read them once, at import).

An empty rate turns a limit off. The client's address is labres.client_address (X-Forwarded-For
only from TRUSTED_PROXIES). These limits keep their counts in the cache; when the cache fails
(Redis down or hanging) they let the request through, logged: they guard the server's load, not
passwords (the password limits live in the database, reservations/signin.py).
"""
import logging

from django.conf import settings
from rest_framework import throttling

from labres.client_address import client_address

logger = logging.getLogger(__name__)


class _CacheThrottle:
    def get_ident(self, request):
        return client_address(request)

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception as error:  # any cache error: fail open
            logger.warning("API rate limit %s not applied: the cache failed (%s: %s)", type(self).__name__, type(error).__name__, error)
            return True


class AnonThrottle(_CacheThrottle, throttling.AnonRateThrottle):
    """Anonymous clients, per address: settings.API_THROTTLE_ANON."""

    def get_rate(self):
        return settings.API_THROTTLE_ANON or None


class UserThrottle(_CacheThrottle, throttling.UserRateThrottle):
    """Each member, however many tokens they use: settings.API_THROTTLE_USER."""

    def get_rate(self):
        return settings.API_THROTTLE_USER or None


class TokenIssueThrottle(_CacheThrottle, throttling.AnonRateThrottle):
    """Exchanging a user name and password for a token, per address: settings.API_THROTTLE_TOKEN."""

    scope = "token"

    def get_rate(self):
        return settings.API_THROTTLE_TOKEN or None

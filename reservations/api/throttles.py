"""Rate limits read from settings on each request (DRF's own classes read them once, at import).

An empty rate turns a limit off.
"""
from django.conf import settings
from rest_framework import throttling


class AnonThrottle(throttling.AnonRateThrottle):
    """Anonymous clients, per address: settings.API_THROTTLE_ANON."""

    def get_rate(self):
        return settings.API_THROTTLE_ANON or None


class UserThrottle(throttling.UserRateThrottle):
    """Each member, however many tokens they use: settings.API_THROTTLE_USER."""

    def get_rate(self):
        return settings.API_THROTTLE_USER or None


class TokenIssueThrottle(throttling.AnonRateThrottle):
    """Exchanging a user name and password for a token, per address: settings.API_THROTTLE_TOKEN."""

    scope = "token"

    def get_rate(self):
        return settings.API_THROTTLE_TOKEN or None

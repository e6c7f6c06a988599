"""Fixtures shared by the monitoring tests."""
import pytest


@pytest.fixture
def members(alice, bob):
    """alice and bob, each with their user name on the GPU hosts (alice, bob)."""
    for user in (alice, bob):
        user.profile.unix_username = user.username
        user.profile.save()
    return alice, bob

import pytest

from reservations.models import Profile
from tests.notifications.conftest import fake_slack  # noqa: F401


def link(user, slack_id):
    Profile.objects.filter(user=user).update(slack_user_id=slack_id)
    user.refresh_from_db()
    return slack_id


@pytest.fixture
def alice_slack(alice):
    """Alice's Slack id, linked to her labres account."""
    return link(alice, "UALICE")


@pytest.fixture
def bob_slack(bob):
    return link(bob, "UBOB")

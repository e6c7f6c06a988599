from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from reservations.timeline import monday_of

UTC = ZoneInfo("UTC")


@pytest.fixture
def lab_in_utc(settings):
    """The lab's zone is UTC, whatever TIME_ZONE the environment sets."""
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def monday(lab_in_utc):
    """A Monday two weeks ahead (UTC midnight), so every booking in its week is in the future."""
    today = timezone.localdate(timezone.now(), UTC)
    return datetime.combine(monday_of(today) + timedelta(days=14), datetime.min.time(), tzinfo=UTC)

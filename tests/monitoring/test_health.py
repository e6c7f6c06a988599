import pytest
from django.core.cache import cache
from django.utils import timezone

from monitoring.tasks import HEARTBEAT_KEY, heartbeat

pytestmark = pytest.mark.django_db


def test_health_is_degraded_without_a_worker_heartbeat(client):
    cache.delete(HEARTBEAT_KEY)

    body = client.get("/health/").json()

    assert body["database"] == "ok"
    assert body["status"] == "degraded"
    assert body["worker"].startswith("no heartbeat")


def test_health_is_ok_after_a_heartbeat(client):
    heartbeat()

    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["worker_last_seen"] <= timezone.now().isoformat()

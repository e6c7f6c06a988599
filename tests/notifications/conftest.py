import pytest
from django.conf import settings as django_settings

from tests.workers import CELERY_WORKER, WorkerProcess, purge

from .fake_slack import FakeSlack


@pytest.fixture
def fake_slack(settings):
    """A local Slack (Web API and webhooks) that records what it receives; the bot token points at it."""
    slack = FakeSlack().start()
    settings.SLACK_API_URL = slack.api_url
    settings.SLACK_BOT_TOKEN = "xoxb-test-token"
    yield slack
    slack.stop()


@pytest.fixture
def start_worker():
    """start_worker(**env) starts a real Celery worker (solo pool) on the portal's queues and waits until it is ready."""
    queues = [django_settings.CELERY_TASK_DEFAULT_QUEUE, django_settings.PERIODIC_QUEUE]
    purge(queues)  # a message left by an earlier run must not stand in for this test's
    workers = []

    def start(**env):
        worker = WorkerProcess([*CELERY_WORKER, "--queues", ",".join(queues)], **env)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
    purge(queues)

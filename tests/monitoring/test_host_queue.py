"""A real host agent (manage.py host_agent, a Celery worker in a subprocess) on the broker the settings
name: Redis when REDIS_URL is set, else the local folder. Beat's fan-out reaches only the hosts whose
queue someone consumes, and a sampling message that expired before its host took it is dropped."""
import sys
import time

import pytest

from monitoring.models import GpuSample
from monitoring.tasks import sample_all_hosts, sample_host
from tests.factories import ServerFactory
from tests.workers import WorkerProcess, purge, wait_for, waiting_in

# The worker writes to the test database from another process: the test must not hold it in a transaction.
pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

QUEUES = ["host.thalys", "host.eurostar", "celery"]  # "celery": a worker says hello with a heartbeat message


def host_agent(server):
    """A `manage.py host_agent` subprocess for one server, on fake NVML."""
    return WorkerProcess([sys.executable, "manage.py", "host_agent", "--server", server, "--loglevel", "INFO"], name="host agent", LABRES_NVML="fake")


@pytest.fixture
def start_agent():
    purge(QUEUES)
    agents = []

    def start(server):
        agent = host_agent(server)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.stop()
    purge(QUEUES)


def samples_of(server_name):
    return GpuSample.objects.filter(device__server__name=server_name)


def test_beat_fan_out_reaches_the_host_whose_queue_is_consumed(start_agent, settings):
    settings.TELEMETRY_INTERVAL_SECONDS = 60  # routing under test here, not expiry: no race with a slow start
    ServerFactory(name="thalys", gpus=8)
    ServerFactory(name="eurostar", gpus=4)
    agent = start_agent("thalys")
    agent.wait_ready()

    assert sample_all_hosts() == 2  # one message on host.thalys, one on host.eurostar

    if not wait_for(lambda: samples_of("thalys").count() == 8):
        pytest.fail("no samples from the thalys agent:\n" + agent.output[-3000:])
    assert samples_of("eurostar").count() == 0
    assert waiting_in("host.eurostar") == 1  # routed to its host's queue, where nobody consumes it


def test_a_sampling_message_that_expired_before_the_host_took_it_is_dropped(start_agent):
    ServerFactory(name="thalys", gpus=8)
    expired = sample_host.apply_async(args=["thalys"], queue="host.thalys", expires=1)
    time.sleep(2)  # the host is down past the message's expiry

    agent = start_agent("thalys")
    agent.wait_ready()
    marker = sample_host.apply_async(args=["thalys"], queue="host.thalys", expires=60)

    # One queue, one worker process: the expired message is taken before the marker.
    if not wait_for(lambda: f"sample_host[{marker.id}] succeeded" in agent.output):
        pytest.fail("the marker message was not run:\n" + agent.output[-3000:])
    assert f"Discarding revoked task: monitoring.tasks.sample_host[{expired.id}]" in agent.output
    assert samples_of("thalys").count() == 8  # the marker's reading only
    assert samples_of("thalys").values("taken_at").distinct().count() == 1

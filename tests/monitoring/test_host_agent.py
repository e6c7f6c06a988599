"""manage.py host_agent: which queue it consumes and under which name, checked without starting a worker."""
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labres.celery import app
from monitoring.management.commands import host_agent
from reservations.models import Server
from tests.factories import ServerFactory


@pytest.fixture
def started(monkeypatch):
    """The argv the command would start the Celery worker with; no worker starts."""
    calls = []
    monkeypatch.setattr(app, "start", lambda argv: calls.append(argv))
    return calls


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("host_agent", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def option(argv, name):
    return argv[argv.index(name) + 1]


def test_the_name_comes_from_labres_host(monkeypatch):
    monkeypatch.setenv("LABRES_HOST", "thalys")

    assert host_agent.agent_name() == "thalys"


def test_the_name_defaults_to_the_short_host_name(monkeypatch):
    monkeypatch.delenv("LABRES_HOST", raising=False)
    monkeypatch.setattr(host_agent.socket, "gethostname", lambda: "gpu7.lab.example.org")

    assert host_agent.agent_name() == "gpu7"


def test_server_option_wins_over_labres_host(monkeypatch):
    monkeypatch.setenv("LABRES_HOST", "thalys")

    assert host_agent.agent_name("eurostar") == "eurostar"


@pytest.mark.parametrize("name", ["gpu 7", "gpu7.lab", "thalys/0", "x" * 65])
def test_a_name_that_cannot_be_a_server_is_refused_clearly(name):
    with pytest.raises(CommandError, match="server name"):
        host_agent.agent_name(name)


def test_one_host_consumes_its_own_queue_under_its_own_worker_name():
    assert host_agent.worker_plan("thalys") == ("host-thalys@%h", ["host.thalys"])


@pytest.mark.django_db
def test_all_consumes_the_queue_of_every_active_monitored_server():
    ServerFactory(name="thalys")
    ServerFactory(name="eurostar")
    ServerFactory(name="ice", monitored=False)
    ServerFactory(name="retired", active=False)

    node, queues = host_agent.worker_plan(all_hosts=True)

    assert queues == ["host.eurostar", "host.thalys"]
    assert node == "hosts@%h"


@pytest.mark.django_db
def test_all_without_monitored_servers_is_refused():
    ServerFactory(name="ice", monitored=False)

    with pytest.raises(CommandError, match="No active, monitored servers"):
        host_agent.worker_plan(all_hosts=True)


@pytest.mark.django_db
def test_the_command_starts_a_single_worker_on_the_host_queue(thalys, started):
    run("--server", "thalys")

    [argv] = started
    assert argv[0] == "worker"
    assert option(argv, "--queues") == "host.thalys"
    assert option(argv, "--hostname") == "host-thalys@%h"
    assert option(argv, "--concurrency") == "1"
    assert "--without-gossip" in argv and "--without-mingle" in argv


@pytest.mark.django_db
def test_the_command_registers_a_server_the_portal_does_not_know(started, monkeypatch):
    monkeypatch.setenv("LABRES_HOST", "kronos")

    out, _ = run()

    assert Server.objects.filter(name="kronos", active=True, monitored=True).exists()
    assert "Registered the new server kronos" in out
    assert option(started[0], "--queues") == "host.kronos"


@pytest.mark.django_db
def test_the_command_warns_when_beat_sends_the_server_nothing(started):
    ServerFactory(name="ice", monitored=False)

    _, err = run("--server", "ice")

    assert "not monitored" in err
    assert started, "the agent still starts: staff may turn monitoring on later"


@pytest.mark.django_db
def test_the_command_exits_with_the_workers_failure(thalys, monkeypatch):
    monkeypatch.setattr(app, "start", lambda argv: 2)

    with pytest.raises(SystemExit) as exit:
        run("--server", "thalys")
    assert exit.value.code == 2


@pytest.mark.django_db
def test_the_command_passes_the_concurrency_on(thalys, started):
    run("--server", "thalys", "--concurrency", "2")

    assert option(started[0], "--concurrency") == "2"


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["--server", "thalys", "--all"], "not both"),
    (["--server", "thalys", "--concurrency", "0"], "at least 1"),
    (["--server", "bad name"], "cannot be a server name"),
])
def test_the_command_refuses_bad_arguments_before_starting_a_worker(args, message, started):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert started == []
    assert not Server.objects.exists()

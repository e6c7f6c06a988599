import subprocess
import sys

import pytest

from reservations.models import Booking

from .conftest import CLI


@pytest.mark.parametrize("command", [["status"], ["mine"], ["claim", "thalys:0"]])
def test_missing_token_exits_2_with_a_hint(cli, command):
    result = cli(*command, env={"LABRES_TOKEN": ""})

    assert result.returncode == 2
    assert result.stderr == "labres: not logged in: run `labres login` or set LABRES_TOKEN\n"


def test_unreachable_portal_exits_2_naming_it(cli, closed_url):
    result = cli("status", env={"LABRES_URL": closed_url})

    assert result.returncode == 2
    assert result.stderr == f"labres: cannot reach {closed_url}: connection refused\n"


def test_rejected_token_exits_2_with_a_hint(cli):
    result = cli("mine", env={"LABRES_TOKEN": "not-a-token"})

    assert result.returncode == 2
    assert "not logged in" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_bad_duration_exits_2_before_any_request(cli, closed_url):
    result = cli("claim", "thalys:0", "-d", "2x", env={"LABRES_URL": closed_url})

    assert result.returncode == 2
    assert result.stderr == "labres: '2x' is not a duration; use e.g. 30m, 2h, 1h30m or 1d.\n"


def test_bad_device_set_exits_2_before_any_request(cli, closed_url):
    result = cli("run", "thalys:0-x", "--", "true", env={"LABRES_URL": closed_url})

    assert result.returncode == 2
    assert result.stderr == "labres: '0-x' is not a GPU index or range; write e.g. 0, 0-3 or 0-2,5.\n"


def test_bad_time_exits_2_before_any_request(cli, closed_url):
    result = cli("book", "thalys", "--start", "25:00", "-d", "1h", env={"LABRES_URL": closed_url})

    assert result.returncode == 2
    assert "'25:00' is not a time" in result.stderr


def test_api_refusal_exits_2_with_the_apis_message(cli):
    result = cli("claim", "thalys:9")

    assert result.returncode == 2
    assert "does not exist on thalys" in result.stderr
    assert "Traceback" not in result.stderr
    assert not Booking.objects.exists()


def test_cli_imports_neither_django_nor_celery():
    code = "import sys, labres.cli.commands, labres.cli.run, labres.cli.prompt; print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'celery', 'kombu'}))"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


def test_help_works_for_every_subcommand():
    for command in ["status", "claim", "book", "run", "release", "extend", "cancel", "mine", "prompt", "login"]:
        result = subprocess.run([*CLI, command, "-h"], capture_output=True, text=True)
        assert result.returncode == 0 and "usage: labres" in result.stdout, command

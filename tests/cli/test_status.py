import json

from tests.factories import ServerFactory


def test_status_exits_0_when_the_server_is_free(cli):
    result = cli("status", "thalys")

    assert result.returncode == 0, result.stderr
    assert "thalys:0" in result.stdout
    assert "free" in result.stdout


def test_status_without_a_target_shows_this_hosts_server(cli):
    result = cli()

    assert result.returncode == 0, result.stderr
    assert "thalys:7" in result.stdout


def test_status_exits_0_when_the_caller_holds_the_units(cli, alice, holding):
    holding(alice, server="thalys", devices="0-1")

    result = cli("status", "thalys:0-1")

    assert result.returncode == 0, result.stderr
    assert "alice (you)" in result.stdout


def test_status_exits_1_when_someone_else_holds_a_requested_gpu(cli, bob, holding):
    holding(bob, server="thalys", devices="1", purpose="training resnet")

    result = cli("status", "thalys:0-1")

    assert result.returncode == 1, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("thalys:1"))
    assert "bob" in row and "training resnet" in row


def test_status_exits_0_for_free_gpus_while_someone_else_holds_others(cli, bob, holding):
    holding(bob, server="thalys", devices="1")

    assert cli("status", "thalys:2-3").returncode == 0


def test_status_of_the_whole_server_exits_1_when_someone_holds_any_gpu(cli, bob, holding):
    holding(bob, server="thalys", devices="5")

    assert cli("status", "thalys").returncode == 1


def test_status_shows_who_comes_next(cli, bob, book, later):
    book(bob, later, server="thalys", devices="2")

    result = cli("status", "thalys:2")

    assert result.returncode == 0
    assert "bob" in result.stdout.splitlines()[1]


def test_status_exits_2_for_an_unknown_server(cli):
    result = cli("status", "nosuch")

    assert result.returncode == 2
    assert "nosuch" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_exits_2_for_a_gpu_the_server_does_not_have(cli):
    result = cli("status", "thalys:9")

    assert result.returncode == 2
    assert "GPU 9 does not exist on thalys (it has 0-7)" in result.stderr


def test_status_json_is_the_availability_answer(cli, bob, holding):
    holding(bob, server="thalys", devices="0")

    result = cli("status", "thalys", "--json")

    assert result.returncode == 1
    answer = json.loads(result.stdout)
    gpu0 = next(unit for unit in answer["units"] if unit["unit"] == "thalys:0")
    assert gpu0["busy"][0]["user"] == "bob"


def test_status_of_a_server_without_gpus_is_its_whole_server_unit(cli, db):
    ServerFactory(name="atlas")

    result = cli("status", "atlas")

    assert result.returncode == 0, result.stderr
    assert "atlas (whole)" in result.stdout

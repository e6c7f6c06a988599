import json
import socket
import stat

from reservations.models import ApiToken

PASSWORD = "correct horse battery staple"  # tests/factories.py
LOGGED_OUT = {"LABRES_URL": "", "LABRES_TOKEN": ""}


def test_login_saves_a_token_readable_by_the_owner_only(cli, live_server, alice, tmp_path):
    result = cli("login", env={**LOGGED_OUT, "LABRES_PASSWORD": PASSWORD}, input=f"{live_server.url}\nalice\n")

    assert result.returncode == 0, result.stderr
    path = tmp_path / ".config" / "labres" / "config.json"
    saved = json.loads(path.read_text())
    assert saved["url"] == live_server.url and saved["username"] == "alice"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert saved["token"] not in result.stdout + result.stderr
    host = socket.gethostname().split(".")[0]
    assert ApiToken.objects.get(key_hash=ApiToken.hash(saved["token"])).name == f"alice@{host} CLI"


def test_login_reads_the_password_from_stdin_when_asked(cli, live_server, alice):
    result = cli("login", "--password-stdin", env=LOGGED_OUT, input=f"{live_server.url}\nalice\n{PASSWORD}\n")

    assert result.returncode == 0, result.stderr


def test_saved_token_is_used_by_later_commands(cli, live_server, alice):
    cli("login", "--url", live_server.url, "--username", "alice", env={**LOGGED_OUT, "LABRES_PASSWORD": PASSWORD})

    result = cli("mine", env=LOGGED_OUT)

    assert result.returncode == 0, result.stderr


def test_saved_token_is_never_sent_to_another_portal(cli, live_server, alice, closed_url):
    cli("login", "--url", live_server.url, "--username", "alice", env={**LOGGED_OUT, "LABRES_PASSWORD": PASSWORD})

    result = cli("mine", env={"LABRES_URL": closed_url, "LABRES_TOKEN": ""})

    assert result.returncode == 2
    assert "not logged in" in result.stderr


def test_login_with_a_wrong_password_exits_2_and_saves_nothing(cli, live_server, alice, tmp_path):
    result = cli("login", "--url", live_server.url, "--username", "alice", env={**LOGGED_OUT, "LABRES_PASSWORD": "wrong"})

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / ".config" / "labres" / "config.json").exists()


# --- single sign-on members: no password here, a token made on the profile page ------------------


def test_login_with_token_saves_a_token_made_on_the_profile_page(cli, live_server, tmp_path):
    from tests.factories import UserFactory

    olivia = UserFactory(username="olivia", password=None)  # signs in through the lab's OpenID provider only
    key = ApiToken.issue(olivia, "laptop")[1]

    result = cli("login", "--with-token", "--url", live_server.url, env=LOGGED_OUT, input=f"{key}\n")

    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / ".config" / "labres" / "config.json").read_text())
    assert (saved["url"], saved["token"], saved["username"]) == (live_server.url, key, "olivia")
    assert key not in result.stdout + result.stderr
    assert cli("mine", env=LOGGED_OUT).returncode == 0


def test_login_with_an_unknown_token_exits_2_and_saves_nothing(cli, live_server, tmp_path):
    result = cli("login", "--with-token", "--url", live_server.url, env=LOGGED_OUT, input="not-a-token\n")

    assert result.returncode == 2
    assert not (tmp_path / ".config" / "labres" / "config.json").exists()

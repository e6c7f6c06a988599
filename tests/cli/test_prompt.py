import stat

from reservations import services
from reservations.models import ApiToken


def test_prompt_marks_a_host_held_by_someone_else(cli, bob, holding):
    holding(bob, server="thalys", devices="3")

    result = cli("prompt")

    assert result.returncode == 0
    assert result.stdout == "!bob "


def test_prompt_marker_is_red_unless_no_color_is_set(cli, bob, holding):
    holding(bob, server="thalys", devices="3")

    result = cli("prompt", env={"NO_COLOR": ""})

    assert result.stdout == "\033[31m!bob\033[0m "


def test_prompt_for_bash_marks_the_colour_codes_as_invisible(cli, bob, holding):
    holding(bob, server="thalys", devices="3")

    result = cli("prompt", "--shell", "bash", env={"NO_COLOR": ""})

    assert result.stdout == "\001\033[31m\002!bob\001\033[0m\002 "


def test_prompt_is_empty_when_the_host_is_free(cli):
    result = cli("prompt")

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_prompt_is_empty_when_the_caller_holds_the_host(cli, alice, holding):
    holding(alice, server="thalys")

    result = cli("prompt")

    assert (result.returncode, result.stdout) == (0, "")


def test_prompt_answers_from_its_cache_within_the_ttl(cli, bob, holding):
    theirs = holding(bob, server="thalys", devices="3")
    assert cli("prompt").stdout == "!bob "
    services.release_booking(theirs, by=bob)

    assert cli("prompt").stdout == "!bob "
    assert cli("prompt", env={"LABRES_PROMPT_TTL": "0"}).stdout == ""


def test_prompt_prints_nothing_and_exits_0_when_the_portal_is_unreachable(cli, closed_url):
    result = cli("prompt", env={"LABRES_URL": closed_url})

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_prompt_prints_nothing_and_exits_0_when_not_logged_in(cli):
    result = cli("prompt", env={"LABRES_TOKEN": ""})

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_prompt_cache_is_not_shared_with_another_member_in_the_same_home(cli, alice, bob, holding):
    holding(bob, server="thalys", devices="3")
    assert cli("prompt").stdout == "!bob "  # alice's answer, now cached

    as_bob = cli("prompt", env={"LABRES_TOKEN": ApiToken.issue(bob, "cli")[1]})

    assert as_bob.stdout == ""  # bob holds it himself: no marker, whatever alice's cache says


def test_prompt_cache_is_kept_per_portal(cli, bob, holding, closed_url):
    holding(bob, server="thalys", devices="3")
    assert cli("prompt").stdout == "!bob "

    assert cli("prompt", env={"LABRES_URL": closed_url}).stdout == ""


def test_prompt_cache_files_are_the_owners_alone(cli, bob, holding, tmp_path):
    holding(bob, server="thalys", devices="3")
    cli("prompt")

    folder = tmp_path / ".cache" / "labres"
    (cached,) = folder.iterdir()
    assert (stat.S_IMODE(folder.stat().st_mode), stat.S_IMODE(cached.stat().st_mode)) == (0o700, 0o600)


def test_prompt_ignores_a_cache_file_others_may_write(cli, bob, holding, tmp_path):
    theirs = holding(bob, server="thalys", devices="3")
    cli("prompt")
    (cached,) = (tmp_path / ".cache" / "labres").iterdir()
    services.release_booking(theirs, by=bob)

    cached.chmod(0o666)

    assert cli("prompt").stdout == ""  # asked the portal again

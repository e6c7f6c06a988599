from reservations import services


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

"""Slack's endpoints answer malformed or oversized requests with a 4xx, never a 500 (issue 17, section 3)."""
import json
from urllib.parse import urlencode

import pytest
import requests

from reservations.parsing import MAX_JSON_DEPTH

from .test_transport import signed_headers as signed
from .test_transport import signing_secret  # noqa: F401 - an autouse fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("timestamp", ["9" * 400, "1" + "0" * 30, "-1", "1e9", "+1700000000"])
@pytest.mark.parametrize("path", ["/slack/commands/", "/slack/interactions/"])
def test_a_timestamp_that_is_not_a_unix_time_is_a_401(live_server, path, timestamp):
    body = urlencode({"command": "/gpu", "text": "help", "user_id": "U0ALICE"})

    response = requests.post(f"{live_server.url}{path}", data=body.encode(), headers=signed(body, timestamp=timestamp), timeout=10)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_timestamp"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 2000])
def test_an_interaction_payload_nested_too_deep_is_a_400(live_server, depth):
    payload = {"type": "block_actions", "user": {"id": "U0ALICE"}, "actions": [{"action_id": "x", "value": "1"}]}
    body = urlencode({"payload": json.dumps(payload)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"})

    response = requests.post(f"{live_server.url}/slack/interactions/", data=body.encode(), headers=signed(body), timeout=10)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_payload"


def test_a_body_over_the_bound_is_a_400_not_read(live_server, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = urlencode({"command": "/gpu", "text": "help " + "x" * 20_000, "user_id": "U0ALICE"})

    response = requests.post(f"{live_server.url}/slack/commands/", data=body.encode(), headers=signed(body), timeout=10)

    assert response.status_code == 400

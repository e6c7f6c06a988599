import pytest

from .fake_slack import FakeSlack


@pytest.fixture
def fake_slack(settings):
    """A local Slack (Web API and webhooks) that records what it receives; the bot token points at it."""
    slack = FakeSlack().start()
    settings.SLACK_API_URL = slack.api_url
    settings.SLACK_BOT_TOKEN = "xoxb-test-token"
    yield slack
    slack.stop()

"""What the Slack bot answers with; the commands and the Block Kit builders both make these."""
from dataclasses import dataclass

from django.conf import settings


@dataclass
class Reply:
    text: str  # plain-text fallback
    blocks: list | None = None  # Block Kit
    in_channel: bool = False  # shared-state changes when SLACK_ANNOUNCE is on; else only the caller sees it
    refused: bool = False  # nothing was done (bad input, not allowed): a button may be pressed again

    def as_slack(self):
        answer = {"response_type": "in_channel" if self.in_channel else "ephemeral", "text": self.text}
        if self.blocks:
            answer["blocks"] = self.blocks
        return answer


def command_name():
    return getattr(settings, "SLACK_COMMAND", "/gpu")

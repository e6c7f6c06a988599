"""Logging filters: secrets that travel in URLs never reach the logs."""
import logging
import re

# Calendar feed addresses and Slack link confirmations carry their secret in the path.
SECRET_PATHS = re.compile(r"(/calendar/)[A-Za-z0-9_-]+(\.ics)|(/slack/link/)[^/\s\"?]+")


def redact(text):
    return SECRET_PATHS.sub(lambda m: f"{m[1]}<secret>{m[2]}" if m[1] else f"{m[3]}<secret>", text)


class RedactSecrets(logging.Filter):
    """Rewrite a record whose message holds a secret address (Django's 'Not Found: ...', runserver's request lines)."""

    def filter(self, record):
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
            request = getattr(record, "request", None)
            if request is not None:  # AdminEmailHandler and error trackers read the request itself
                record.request = None
        return True

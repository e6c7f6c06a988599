"""manage.py slack_socket: answer /gpu commands and buttons over Slack's Socket Mode (no public URL needed)."""
import threading

from django.core.management.base import BaseCommand, CommandError

from notifications.slackbot.socket_mode import socket_client


class Command(BaseCommand):
    help = "Connect to Slack in Socket Mode (SLACK_APP_TOKEN) and answer slash commands and buttons until stopped."

    def handle(self, *args, **options):
        try:
            client = socket_client()
        except RuntimeError as error:
            raise CommandError(str(error)) from None
        client.connect()
        self.stdout.write("Connected to Slack in Socket Mode; Ctrl-C stops.")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            client.close()

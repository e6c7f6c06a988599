"""manage.py import_ics FILE_OR_URL (--server NAME | --room NAME): a one-time import of a calendar's events as bookings.

For a lab moving from a shared calendar to labres. The calendar is recorded (inactive: not
followed afterwards), so running the command again finds it and changes only what changed in
the source: the same UIDs keep the same bookings. Members are not notified unless --notify.
"""
import contextlib
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from reservations import icsimport
from reservations.models import ExternalCalendar, ImportedEvent, Room, Server
from reservations.parsing import format_span


class DryRun(Exception):
    """Raised to roll back everything a dry run wrote."""


class Command(BaseCommand):
    help = "Import an ICS file or address once: its events become bookings of one server or room."

    def add_arguments(self, parser):
        parser.add_argument("source", metavar="FILE_OR_URL", help="An .ics file, or an http(s) address of one.")
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--server", help="The server the events book (GPUs from the titles, e.g. 'alice 0-1').")
        target.add_argument("--room", help="The room the events book.")
        parser.add_argument("--notify", action="store_true", help="Tell members about the bookings made (default: quiet).")
        parser.add_argument("--dry-run", action="store_true", help="Show what would be booked; write nothing.")

    def handle(self, *args, source, server=None, room=None, notify=False, dry_run=False, **options):
        url = self.source_of(source)
        server, room = self.resource_of(server, room)
        try:
            with transaction.atomic():
                calendar = self.calendar_for(url, server, room, notify)
                summary = icsimport.sync(calendar, allow_files=True)
                if summary.skipped:
                    raise CommandError(f"Calendar '{calendar.name}' is being synced right now; try again in a minute.")
                if summary.error:
                    raise CommandError(summary.error)
                lines = self.report(summary, dry_run=dry_run)
                if dry_run:
                    raise DryRun
        except DryRun:
            lines.append("Dry run: nothing was written.")
        # Printed after the commit: a reader that leaves early (`| head`) must not undo the import.
        self.print_lines(lines)

    def print_lines(self, lines):
        try:
            for line in lines:
                self.stdout.write(line)
            self.stdout.flush()
        except BrokenPipeError:
            # The reader left; everything is written already. Point stdout at /dev/null so that
            # Python's own flush at exit does not complain either.
            with contextlib.suppress(AttributeError, OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def source_of(self, source):
        scheme = urlsplit(source).scheme.lower()
        if scheme in ("http", "https"):
            return source
        if scheme not in ("", "file") and len(scheme) > 1:
            raise CommandError(f"'{source}' is neither a file nor an http(s) address.")
        path = Path(source.removeprefix("file://")).expanduser()
        if not path.is_file():
            raise CommandError(f"There is no file {path}; give an .ics file or an http(s) address.")
        return str(path.resolve())

    def resource_of(self, server, room):
        if (server is None) == (room is None):
            raise CommandError("Say what the events book: --server NAME or --room NAME (one of them).")
        if server is not None:
            found = Server.objects.filter(name__iexact=server.strip()).first()
            if found is None:
                known = ", ".join(Server.objects.values_list("name", flat=True)) or "none yet"
                raise CommandError(f"There is no server '{server}'; servers: {known}.")
            return found, None
        found = Room.objects.filter(name__iexact=room.strip()).first()
        if found is None:
            known = ", ".join(Room.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"There is no room '{room}'; rooms: {known}.")
        return None, found

    def calendar_for(self, url, server, room, notify):
        """The calendar this source and resource were imported as before, or a new, inactive one."""
        calendar = ExternalCalendar.objects.filter(url=url, server=server, room=room).order_by("pk").first()
        if calendar is None:
            name = f"import of {Path(urlsplit(url).path).name or url}"[:200]
            calendar = ExternalCalendar.objects.create(name=name, url=url, server=server, room=room, active=False)
        if calendar.notify_members != notify:
            calendar.notify_members = notify
            calendar.save(update_fields=["notify_members"])
        return calendar

    def report(self, summary, *, dry_run=False):
        """The lines that say what became of each event; in a dry run, what would have."""
        zone = timezone.get_current_timezone()
        lines = []
        for outcome in sorted(summary.outcomes, key=lambda o: (o.occurrence.start, o.occurrence.uid)):
            occurrence = outcome.occurrence
            when = format_span(occurrence.start, occurrence.end, zone)
            line = f"{when:<32} {occurrence.summary[:40]:<40} {self.state_of(outcome, dry_run)}"
            if outcome.problem:
                line += f": {outcome.problem}"
            lines.append(line)
        for skipped in summary.skipped_events:
            lines.append(f"{skipped.when:<32} {skipped.summary[:40]:<40} skipped: {skipped.reason}")
        if summary.removed:
            verb = "would be cancelled" if dry_run else "cancelled"
            lines.append(f"{summary.removed} booking(s) {verb}: their events are no longer in the calendar.")
        lines.append(("Would do: " if dry_run else "") + summary.status)
        return lines

    def state_of(self, outcome, dry_run):
        if outcome.state != ImportedEvent.State.BOOKED:
            if dry_run and outcome.state == ImportedEvent.State.CANCELLED and outcome.change == "cancelled":
                return "would cancel"
            return outcome.state
        booking = outcome.booking
        whose = f"for {booking.user.get_username()}: {booking.what}"
        if not dry_run or outcome.change == "unchanged":
            return f"booked #{booking.pk} ({outcome.change}) {whose}"
        # A booking a dry run makes has a number only until the rollback: name none.
        return f"would book {whose}" if outcome.change == "new" else f"would update {whose}"

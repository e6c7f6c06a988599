"""The `/gpu` slash commands and the buttons on bot messages, free of any transport.

The HTTP endpoints and Socket Mode both call handle_command / handle_action and send back
Reply.as_slack(). Every write goes through reservations.services; every bad input gets an
ephemeral reply saying what was wrong and what would be right.
"""
import re

from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone

from reservations import services
from reservations.errors import BookingError
from reservations.models import Allocation, Booking, Profile
from reservations.parsing import ParseError, format_span, parse_cpu_cores, parse_duration, parse_memory, parse_moment, parse_target
from reservations.selectors import member_bookings
from reservations.services.audit import Surface, acting_via

from ..messages import slack_escape, time_zone_of
from . import linking
from .blocks import realtime_reply, status_reply
from .linking import LinkError
from .replies import Reply, command_name
from .words import words as typed_words

# Subcommands the HTTP endpoint answers through response_url from a Celery task (they read telemetry).
DEFERRED = {"realtime", "status"}

RELEASE_ACTION = "booking_release"
EXTEND_ACTION = "booking_extend"
EXTEND_BY = "1h"
APPROVE_ACTION = "booking_approve"  # on approval_requested messages; staff only (checked by the service)
DECLINE_ACTION = "booking_decline"
SERIES_APPROVE_ACTION = "series_approve"  # on a series' approval_requested message: every date still pending
SERIES_DECLINE_ACTION = "series_decline"
LINK_ACTIONS = {"booking_open", "gpus_open"}  # buttons with a url: Slack opens the page, and tells us too


class CommandError(Exception):
    """Input a command cannot use; str(error) is the reply."""


# (usage, what it does, example); the order of the help text.
USAGE = {
    "status": ("status [SERVER]", "who holds which GPU now, with live load", "status thalys"),
    "realtime": ("realtime [SERVER]", "utilization, memory, temperature and processes per GPU", "realtime thalys"),
    "claim": ("claim SERVER[:GPUS] DURATION [cpus=N] [mem=SIZE] PURPOSE…", "book now", "claim thalys:0-1 2h training resnet"),
    "book": ("book SERVER[:GPUS] START DURATION [cpus=N] [mem=SIZE] PURPOSE…", "book later (START: 14:00, tomorrow 9:00, 2026-11-24T14:00)", "book thalys:2 tomorrow 9:00 3h eval"),
    "release": ("release [ID | SERVER[:GPUS]]", "end your booking now (an upcoming one is cancelled)", "release 42"),
    "extend": ("extend ID DURATION", "make a booking longer", "extend 42 1h"),
    "mine": ("mine", "your running and upcoming bookings", "mine"),
    "link": ("link EMAIL", "link your Slack account to your labres account", "link you@lab.org"),
    "wait": ("wait [SERVER [GPUS] DURATION PURPOSE…]", "be offered GPUs (no number: the whole server) as soon as they are free; alone: your waitlist", "wait thalys 2 4h training"),
    "help": ("help", "this list", "help"),
}


def help_reply():
    name = command_name()
    lines = [f"*{name}* commands:"]
    for usage, what, example in USAGE.values():
        lines.append(f"• `{name} {usage}`: {what}, e.g. `{name} {example}`")
    lines.append("Durations: 30m, 2h, 1h30m, 1d. GPUs: 0, 0-3, 0-2,5; no GPUs means the whole server.")
    lines.append(
        f"CPU cores and memory of a server's pool: `cpus=16 mem=64G` (memory in GiB: 64, 64G, 1T), with GPUs or alone, "
        f"e.g. `{name} claim thalys 4h cpus=16 mem=64G preprocessing`."
    )
    return Reply("\n".join(lines))


def usage_error(subcommand, problem=""):
    usage, _, example = USAGE[subcommand]
    name = command_name()
    lead = f"{problem} " if problem else ""
    return CommandError(f"{lead}Usage: `{name} {usage}`, e.g. `{name} {example}`.")


def member_for(slack_user_id):
    """The active labres user linked to this Slack id, with their profile; None if nobody is."""
    if not slack_user_id:
        return None
    profile = Profile.objects.filter(slack_user_id=slack_user_id, user__is_active=True).select_related("user").first()
    if profile is None:
        return None
    user = profile.user
    user.profile = profile
    return user


def link_first():
    return Reply(f"Link your Slack account first: {command_name()} link you@lab.org", refused=True)


def handle_command(text, *, slack_user_id, now=None):
    """Answer one slash command; `text` is what follows the command name ("" means status), as Slack
    sends it (escaped, with <@U…|name> and <mailto:…|…> tokens: words.py reads it back)."""
    now = now or timezone.now()
    words = typed_words(text)
    subcommand = words[0].lower() if words else "status"
    args = words[1:]
    if subcommand == "help":
        return help_reply()
    if subcommand not in COMMANDS:
        return Reply(f"I don't know '{slack_escape(subcommand)}'. Try `{command_name()} help` for the list of commands.")
    if subcommand == "link":
        return _guarded(link, args, slack_user_id=slack_user_id, now=now)
    user = member_for(slack_user_id)
    if user is None:
        return link_first()
    return _guarded(COMMANDS[subcommand], user, args, now=now)


def handle_action(action_id, value, *, slack_user_id, now=None):
    """Answer a button: release a booking, or extend it by 1h."""
    now = now or timezone.now()
    user = member_for(slack_user_id)
    if user is None:
        return link_first()
    if action_id == RELEASE_ACTION:
        return _guarded(_release_by_id, user, value, now=now)
    if action_id == EXTEND_ACTION:
        booking_id, _, duration = (value or "").partition(":")
        return _guarded(_extend, user, [booking_id, duration or EXTEND_BY], now=now)
    if action_id == WAITLIST_CLAIM_ACTION:
        return _guarded(_claim_offer, user, value, now=now)
    if action_id in (APPROVE_ACTION, DECLINE_ACTION):
        return _guarded(_decide, user, value, approve=action_id == APPROVE_ACTION, now=now)
    if action_id in (SERIES_APPROVE_ACTION, SERIES_DECLINE_ACTION):
        return _guarded(_decide_series, user, value, approve=action_id == SERIES_APPROVE_ACTION, now=now)
    return Reply("This button is not known here (any more); try `" + command_name() + " help`.", refused=True)


WAITLIST_CLAIM_ACTION = "waitlist_claim"


def pressed_again(action_id, value):
    """The answer to a button pressed again on a message where it already acted (it acts once)."""
    again = ""
    if action_id == EXTEND_ACTION:
        booking_id, _, duration = (value or "").partition(":")
        again = f" To extend it once more: `{command_name()} extend {slack_escape(booking_id)} {slack_escape(duration or EXTEND_BY)}`."
    return Reply(f"You already pressed this button on this message, and it did its work then; a button acts once.{again}", refused=True)


def _claim_offer(user, value, *, now):
    """The Claim button of a waitlist offer ("<entry id>:<token>"): only the entry's own member books."""
    from reservations.models import WaitlistEntry
    from reservations.services import waitlist

    entry_id, _, token = (value or "").partition(":")
    entry = WaitlistEntry.objects.filter(pk=int(entry_id)).first() if entry_id.isdigit() else None
    if entry is None:
        raise CommandError("That waitlist offer does not exist (any more).")
    booking = waitlist.claim(entry, by=user, token=token or None, source=Booking.Source.SLACK, now=now)
    return _booked_reply(user, booking, verb="claimed")


@acting_via(Surface.SLACK)
def _guarded(handler, *args, **kwargs):
    """Run a handler with times in the caller's zone, turning domain errors into ephemeral replies."""
    user = args[0] if args and hasattr(args[0], "pk") else None
    with timezone.override(time_zone_of(user)):
        try:
            return handler(*args, **kwargs)
        except CommandError as error:  # mrkdwn already, its values escaped where it was written
            return Reply(str(error), refused=True)
        except (BookingError, ParseError, LinkError) as error:  # plain text that names others' purposes, or echoes input
            return Reply(slack_escape(error), refused=True)


# --- commands -------------------------------------------------------------------------------


def claim(user, args, *, now):
    shares, args = _shares(args)
    if len(args) < 2:
        raise usage_error("claim")
    server, indices = _target(args[0], "claim")
    return _book_from_slack(user, server, indices, start=now, length=_duration(args[1]), words=args[2:], shares=shares, now=now, verb="claimed")


def book(user, args, *, now):
    shares, args = _shares(args)
    if len(args) < 3:
        raise usage_error("book")
    server, indices = _target(args[0], "book")
    start, rest = _start_and_rest(args[1:], user, now)
    if not rest:
        raise usage_error("book", "Say how long, after the start.")
    return _book_from_slack(user, server, indices, start=start, length=_duration(rest[0]), words=rest[1:], shares=shares, now=now, verb="booked")


def release(user, args, *, now):
    if len(args) > 1:
        raise usage_error("release")
    if args and re.fullmatch(r"#?\d+", args[0]):
        return _release_by_id(user, args[0], now=now)
    running, _, _ = member_bookings(user, now)
    if args:
        server, indices = _target(args[0], "release")
        running = [b for b in running if _matches(b, server, indices)]
        if not running:
            raise CommandError(f"You hold no running booking of {slack_escape(args[0])}. Your bookings: `{command_name()} mine`.")
    if not running:
        raise CommandError(f"You hold no running booking. Your bookings: `{command_name()} mine`.")
    if len(running) > 1:
        lines = "\n".join(f"• {_line(b, user)}" for b in running)
        raise CommandError(f"You hold {len(running)} running bookings; say which, e.g. `{command_name()} release {running[0].pk}`:\n{lines}")
    return _release(user, running[0], now)


def extend(user, args, *, now):
    if len(args) != 2:
        raise usage_error("extend")
    return _extend(user, args, now=now)


def mine(user, args, *, now):
    running, upcoming, _ = member_bookings(user, now, upcoming_limit=20)
    if not running and not upcoming:
        return Reply(f"You have no running or upcoming bookings. Book with `{command_name()} claim thalys:0 2h training`.")
    lines = []
    if running:
        lines.append("*Running*")
        lines += [f"• {_line(b, user)}" for b in running]
    if upcoming:
        lines.append("*Upcoming*")
        lines += [f"• {_line(b, user)}" for b in upcoming]
    return Reply("\n".join(lines))


def status(user, args, *, now):
    if len(args) > 1:
        raise usage_error("status")
    return status_reply(user, now=now, server=args[0] if args else None)


def realtime(user, args, *, now):
    if len(args) > 1:
        raise usage_error("realtime")
    return realtime_reply(user, now=now, server=args[0] if args else None)


COMMANDS = {
    "status": status, "realtime": realtime, "claim": claim, "book": book, "release": release,
    "extend": extend, "mine": mine, "link": None,  # link works for unlinked callers; see handle_command
}


def wait(user, args, *, now):
    """wait SERVER [GPUS] DURATION PURPOSE…: join the server's waitlist; alone: the member's entries."""
    from reservations.parsing import format_moment
    from reservations.services import waitlist

    if not args:
        entries = waitlist.member_entries(user)
        if not entries:
            return Reply(f"You are not waiting for anything. E.g. `{command_name()} {USAGE['wait'][2]}`.")
        lines = [f"• #{e.pk} {slack_escape(e.offered_what)} for {e.length_text}: " + (
            f"*your turn* until {format_moment(e.offer_expires_at.astimezone(time_zone_of(user)))}"
            if e.state == "offered" else f"place {e.position} in line") for e in entries]
        return Reply("*Your waitlist*\n" + "\n".join(lines))
    if len(args) < 2:
        raise usage_error("wait")
    gpus = args[1] if args[1].isdigit() else None
    rest = args[2:] if gpus else args[1:]
    if not rest:
        raise usage_error("wait", "Give a duration, e.g. 2h.")
    entry = waitlist.join(user, server=args[0], gpus=gpus, length=_duration(rest[0]), purpose=" ".join(rest[1:]), now=now)
    _, told = waitlist.how_you_will_hear(user)
    return Reply(f"You are on the waitlist for {slack_escape(entry.what)} ({entry.length_text}), place {waitlist.position(entry)}. {slack_escape(told)}")


COMMANDS["wait"] = wait


def link(args, *, slack_user_id, now):
    """link EMAIL: at once when Slack's profile e-mail matches, else by a link e-mailed to EMAIL.
    Staff: link <@U…> EMAIL links that Slack user directly."""
    if len(args) == 2:
        caller = member_for(slack_user_id)
        if caller is None or not caller.is_staff:
            raise CommandError(f"Only staff can link someone else. To link yourself: `{command_name()} link you@lab.org`.")
        slack_id = args[0].member_id
        if not slack_id:
            raise CommandError(f"Mention the member to link, e.g. `{command_name()} link @alice alice@lab.org`.")
        member = linking.member_with_email(args[1])
        linking.set_slack_id(member, slack_id)
        return Reply(f"Linked <@{slack_id}> to {slack_escape(member.get_username())}.")
    if len(args) != 1:
        raise usage_error("link")
    email = args[0]
    member = linking.member_with_email(email)
    if linking.slack_email_of(slack_user_id).lower() == email.lower():
        linking.set_slack_id(member, slack_user_id)
        return Reply(f"Linked: you are {slack_escape(member.get_username())} on labres now. Try `{command_name()} mine`.")
    linking.check_free(member, slack_user_id)
    linking.mail_confirmation(member, slack_user_id)
    return Reply(f"I e-mailed a confirmation link to {slack_escape(email)}; open it within a day to link your Slack account.")


# --- helpers --------------------------------------------------------------------------------


def _target(text, subcommand):
    try:
        return parse_target(text)
    except ParseError as error:
        raise usage_error(subcommand, slack_escape(error)) from None


# cpus=16 / cores=16 and mem=64G / memory=64G, anywhere after the target; the other words keep their order.
_SHARE_WORDS = {"cpus": "cpu_cores", "cpu": "cpu_cores", "cores": "cpu_cores", "mem": "memory_gib", "memory": "memory_gib"}


def _shares(args):
    """Take the share words out of `args`: ({"cpu_cores": 16, "memory_gib": 64}, the other words)."""
    shares, rest = {}, []
    for position, word in enumerate(args):
        key, sep, value = word.partition("=")
        field = _SHARE_WORDS.get(key.lower()) if sep and position > 0 else None
        if field is None:
            rest.append(word)
            continue
        if field in shares:
            raise CommandError(f"'{slack_escape(word)}' says the {'CPU cores' if field == 'cpu_cores' else 'memory'} twice; give it once, e.g. cpus=16 mem=64G.")
        try:
            shares[field] = parse_cpu_cores(value) if field == "cpu_cores" else parse_memory(value)
        except ParseError as error:
            raise CommandError(f"{slack_escape(str(error).rstrip('.'))} (in `{slack_escape(word)}`).") from None
    return shares, rest


def _duration(text):
    try:
        return parse_duration(text)
    except ParseError as error:
        raise CommandError(slack_escape(error)) from None


def _start_and_rest(words, user, now):
    """The start (one word, or two like 'tomorrow 9:00') and the words after it."""
    zone = time_zone_of(user)
    if len(words) >= 3:
        try:
            return parse_moment(" ".join(words[:2]), now=now, zone=zone), words[2:]
        except ParseError:
            pass
    try:
        return parse_moment(words[0], now=now, zone=zone), words[1:]
    except ParseError as error:
        raise CommandError(slack_escape(error)) from None


def _booking(user, text):
    """The booking numbered `text` ('42' or '#42'), with what it holds loaded."""
    number = (text or "").strip().lstrip("#")
    if not number.isdigit():
        raise CommandError(f"'{slack_escape(text or '')}' is not a booking number; see yours with `{command_name()} mine`.")
    booking = (
        Booking.objects.select_related("server", "room", "user__profile")
        .prefetch_related(Prefetch("allocations", Allocation.objects.select_related("unit__device")))
        .filter(pk=int(number)).first()
    )
    if booking is None:
        raise CommandError(f"There is no booking #{number}; see yours with `{command_name()} mine`.")
    return booking


def _release_by_id(user, text, *, now):
    return _release(user, _booking(user, text), now)


def _release(user, booking, now):
    what = slack_escape(booking.what)
    if booking.start > now and booking.status in Booking.LIVE:
        services.cancel_booking(booking, by=user, now=now)
        return _announce(user, f"cancelled booking #{booking.pk} ({what})", f"Cancelled booking #{booking.pk} ({what}).")
    services.release_booking(booking, by=user, now=now)
    return _announce(user, f"released {what}", f"Released booking #{booking.pk} ({what}); it is free now.")


def _extend(user, args, *, now):
    booking = _booking(user, args[0])
    length = _duration(args[1])
    booking = services.extend_booking(booking, by=user, duration=length, now=now)
    zone = time_zone_of(user)
    return Reply(f"Extended booking #{booking.pk} ({slack_escape(booking.what)}); it now runs {format_span(booking.start, booking.end, zone, joiner='–')}.")


def _decide(user, text, *, approve, now):
    """Approve or decline (without a reason) a booking awaiting approval: staff only."""
    booking = _booking(user, text)
    if approve:
        services.approve_booking(booking, by=user, now=now)
        return Reply(f"Approved booking #{booking.pk} ({slack_escape(booking.what)}) of {slack_escape(booking.user.get_username())}; they are told.")
    services.decline_booking(booking, by=user, now=now)
    decide = f"{settings.SITE_URL}/bookings/{booking.pk}/decide/"
    return Reply(
        f"Declined booking #{booking.pk} ({slack_escape(booking.what)}) of {slack_escape(booking.user.get_username())}; they are told. "
        f"To give them a reason next time, decline on <{decide}|the decide page>."
    )


def _decide_series(user, text, *, approve, now):
    """Approve or decline (without a reason) every date of a series still awaiting approval: staff only."""
    from reservations.models import BookingSeries

    number = (text or "").strip().lstrip("#")
    series = BookingSeries.objects.select_related("user").filter(pk=int(number)).first() if number.isdigit() and len(number) < 19 else None
    if series is None:
        raise CommandError(f"There is no series #{slack_escape(number)} (any more).")
    result = services.decide_series(series, by=user, approve=approve, now=now)
    count = len(result.bookings)
    what = f"{count} date{'s' if count != 1 else ''} of series #{series.pk} ({slack_escape(result.bookings[0].what)}, {slack_escape(series.describe())})"
    if approve:
        return Reply(f"Approved {what} of {slack_escape(series.user.get_username())}; they are told.")
    decide = f"{settings.SITE_URL}/bookings/{result.bookings[0].pk}/decide/"
    return Reply(
        f"Declined {what} of {slack_escape(series.user.get_username())}; they are told. "
        f"To give them a reason next time, decline on <{decide}|the decide page>."
    )


def _matches(booking, server, indices):
    if booking.server is None or booking.server.name.lower() != server.lower():
        return False
    if indices is None:
        return True
    held = {a.unit.device.index for a in booking.allocations.all() if a.unit.device_id}
    return bool(held & set(indices))


def _line(booking, user):
    purpose = f" ({slack_escape(booking.purpose)})" if booking.purpose else ""
    span = format_span(booking.start, booking.end, time_zone_of(user))
    waiting = ", _awaiting approval_" if booking.status == Booking.Status.PENDING else ""
    return f"#{booking.pk} {slack_escape(booking.what)}, {span}{purpose}{waiting}"


def _announce(user, shared_text, own_text):
    """A reply about a change others care about: in the channel when SLACK_ANNOUNCE is on."""
    if getattr(settings, "SLACK_ANNOUNCE", False):
        return Reply(f"<@{user.profile.slack_user_id}> {shared_text}.", in_channel=True)
    return Reply(own_text)


def _book_from_slack(user, server, indices, *, start, length, words, shares, now, verb):
    """claim's and book's booking: the rest of the words are its purpose."""
    booking = services.create_booking(
        user, start=start, end=start + length, purpose=" ".join(words),
        server=server, devices=indices, source=Booking.Source.SLACK, now=now, **shares,
    )
    return _booked_reply(user, booking, verb=verb)


def _booked_reply(user, booking, *, verb):
    line = _line(booking, user)
    announce = getattr(settings, "SLACK_ANNOUNCE", False)
    text = f"<@{user.profile.slack_user_id}> {verb} {line}" if announce else f"Booked for you: {line}"
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Release now"}, "style": "danger",
                 "action_id": RELEASE_ACTION, "value": str(booking.pk)},
                {"type": "button", "text": {"type": "plain_text", "text": f"Extend {EXTEND_BY}"},
                 "action_id": EXTEND_ACTION, "value": f"{booking.pk}:{EXTEND_BY}"},
            ],
        },
    ]
    return Reply(text, blocks=blocks, in_channel=announce)

"""The `labres` subcommands: each takes the parsed arguments and returns the exit code.

Exit codes: 0 done (or: the units are yours to use), 1 someone else holds what you asked
for, 2 an error (bad input, not logged in, portal unreachable, refused by the API).
"""
from __future__ import annotations

import getpass
import os
import socket
import sys

from reservations.parsing import (
    ParseError,
    describe_target,
    format_device_set,
    parse_cpu_cores,
    parse_device_set,
    parse_duration,
    parse_memory,
    parse_target,
)

from . import times
from .client import Client
from .config import default_server, normalize_url, portal, read_config, write_config
from .errors import CliError
from .output import clean, emit_json, say

TYPE_CHECKING = False  # typing is for mypy only: the CLI starts fast without importing it
if TYPE_CHECKING:
    from argparse import Namespace
    from datetime import datetime, timedelta
    from typing import Any

CLAIM_DURATION = "1h"


# --- shared pieces ---------------------------------------------------------------------------


def connect(args: Namespace, *, timeout: float = 10.0) -> Client:
    """A Client for the configured portal; `client.username` is known when the saved token is used."""
    found = portal(getattr(args, "url", None), getattr(args, "token", None))
    return Client(found.url, found.token, username=found.username, timeout=timeout)


def whoami(client: Client) -> str:
    if not client.username:
        client.username = client.get("me/")["username"]
    return client.username


def target_of(text: str | None) -> tuple[str, list[int] | None]:
    """'thalys:0-1' -> ('thalys', [0, 1]); no text means this host, whole server."""
    try:
        return parse_target(text if text else default_server())
    except ParseError as error:
        raise CliError(str(error)) from None


def duration_of(text: str) -> tuple[str, timedelta]:
    """Check a duration locally, before any request; returns (text, timedelta)."""
    try:
        return text, parse_duration(text)
    except ParseError as error:
        raise CliError(str(error)) from None


def label_of(server: str, indices: list[int] | None) -> str:
    return describe_target(server, indices) if indices else server


def target_body(server: str, indices: list[int] | None) -> dict[str, str]:
    body = {"server": server}
    if indices:
        body["devices"] = format_device_set(indices)
    return body


def shares_body(args: Namespace) -> dict[str, int]:
    """--cpus and --mem as the API's cpu_cores and memory_gib, checked before any request; {} when not given."""
    body: dict[str, int] = {}
    try:
        if getattr(args, "cpus", None) is not None:
            body["cpu_cores"] = parse_cpu_cores(args.cpus)
        if getattr(args, "mem", None) is not None:
            body["memory_gib"] = parse_memory(args.mem)
    except ParseError as error:
        raise CliError(str(error)) from None
    return body


def describe(booking: dict[str, Any], now: datetime) -> str:
    """'#42 thalys:0-1 until 16:30 (training resnet)' or '#43 room Lab 2 Wed 10:00–12:00'."""
    start, end = times.from_api(booking["start"]), times.from_api(booking["end"])
    when = f"until {times.show(end, now)}" if start <= now else times.show_span(start, end, now)
    purpose = f" ({booking['purpose']})" if booking.get("purpose") else ""
    return f"#{booking['id']} {booking['what']} {when}{purpose}"


def booking_id_of(text: str) -> int:
    value = str(text).strip().lstrip("#")
    if not value.isdigit():
        raise CliError(f"'{text}' is not a booking number; `labres mine` lists yours")
    return int(value)


# --- login -------------------------------------------------------------------------------


def login(args: Namespace) -> int:
    """Ask for the portal, user name and password; save a new token in the config file (0600). With
    --with-token (or --token KEY), save a token made on the profile page instead: single sign-on members have
    no password here."""
    saved = read_config()
    default_url = args.url or os.environ.get("LABRES_URL") or saved.get("url") or ""
    url = normalize_url(args.url or _ask("Portal URL", default_url))
    if args.token or args.with_token:
        return _save_login(url, args.token or _token(), None)
    username = args.username or _ask("User name", saved.get("username") or getpass.getuser())
    password = _password(args)
    client = Client(url)
    host = socket.gethostname().split(".")[0]
    answer = client.post("auth/token/", {"username": username, "password": password, "name": f"{username}@{host} CLI"})
    return _save_login(url, answer["token"], answer.get("name", "cli"))


def _save_login(url: str, token: str, name: str | None) -> int:
    """Check the token with the portal, then save it; `name` None: a token the member made on the profile page."""
    me = Client(url, token).get("me/")  # the user name as the portal spells it
    path = write_config({"url": url, "token": token, "username": me["username"]})
    what = f"token '{name}'" if name else "your token"
    say(f"Logged in to {url} as {me['username']}; {what} saved in {path}.")
    if os.environ.get("LABRES_TOKEN"):
        say("Note: LABRES_TOKEN is set and takes precedence over the saved token.", err=True)
    return 0


def _token() -> str:
    """A token from standard input (a pipe), else asked for without echo."""
    if sys.stdin.isatty():
        token = getpass.getpass("API token (make one on your profile page, under API tokens): ")
    else:
        token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise CliError("login --with-token needs a token: make one on your profile page, under API tokens")
    return token


def _ask(question: str, default: str) -> str:
    prompt = f"{question} [{default}]: " if default else f"{question}: "
    try:
        answer = input(prompt).strip()
    except EOFError:
        answer = ""
    answer = answer or default
    if not answer:
        raise CliError(f"login needs a {question.lower()}")
    return answer


def _password(args: Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
    else:
        password = os.environ.get("LABRES_PASSWORD") or getpass.getpass("Password: ")
    if not password:
        raise CliError("login needs a password")
    return password


# --- status ------------------------------------------------------------------------------


def status(args: Namespace) -> int:
    """Who holds the server's units now and next; 0 if the asked units are free or yours, 1 if not."""
    server, indices = target_of(args.target)
    client = connect(args)
    availability = client.get("availability/", server=server)
    units = units_asked(availability["units"], server, indices)
    now = times.from_api(availability["start"])
    me = whoami(client) if any(holder_now(unit, now) for unit in units) else None
    if args.json:
        emit_json(availability)
    else:
        _print_board(units, me, now)
        _print_pool(availability["units"], server)
    taken = any(holder["user"] != me for unit in units for holder in [holder_now(unit, now)] if holder)
    return 1 if taken else 0


def units_asked(units: list[dict[str, Any]], server: str, indices: list[int] | None) -> list[dict[str, Any]]:
    mine = [unit for unit in units if (unit.get("server") or "").lower() == server.lower() and unit["kind"] in ("gpu", "server")]
    if not mine:
        raise CliError(f"no server '{server}' in the portal")
    if indices is None:
        return mine
    by_index = {unit["device"]: unit for unit in mine if unit["kind"] == "gpu"}
    missing = [index for index in indices if index not in by_index]
    if missing:
        has = format_device_set(by_index) or "no GPUs"
        raise CliError(f"GPU {format_device_set(missing)} does not exist on {mine[0]['server']} (it has {has})")
    return [by_index[index] for index in indices]


def holder_now(unit: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    return next((busy for busy in unit["busy"] if times.from_api(busy["start"]) <= now < times.from_api(busy["end"])), None)


def _next(unit: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    return next((busy for busy in unit["busy"] if times.from_api(busy["start"]) > now), None)


def _print_board(units: list[dict[str, Any]], me: str | None, now: datetime) -> None:
    rows: list[tuple[str, ...]] = [("UNIT", "NOW", "UNTIL", "PURPOSE", "NEXT")]
    for unit in units:
        name = unit["unit"] + (" (whole)" if unit["kind"] == "server" else "")
        holder, upcoming = holder_now(unit, now), _next(unit, now)
        if holder:
            who = holder["user"] + (" (you)" if holder["user"] == me else "") + (" (pending)" if holder.get("pending") else "")
            until = times.show(times.from_api(holder["end"]), now)
            purpose = _shorten(clean(holder.get("purpose") or ""), 32)
        elif unit["kind"] == "server" and any(holder_now(other, now) for other in units):
            who, until, purpose = "GPUs in use", "", ""  # free as a whole server only once they are
        else:
            who, until, purpose = "free", "", ""
        later = "-"
        if upcoming:
            span = times.show_span(times.from_api(upcoming["start"]), times.from_api(upcoming["end"]), now)
            later = f"{upcoming['user']} {span}" + (" (awaiting approval)" if upcoming.get("pending") else "")
        rows.append(tuple(clean(cell) for cell in (name, who, until, purpose, later)))  # widths of what is shown
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])


def _print_pool(units: list[dict[str, Any]], server: str) -> None:
    """'Pool: 80 of 128 CPU cores and 768 of 1024 GiB free throughout the next 24 h' for a server that shares them."""
    pool = next((unit.get("pool") for unit in units if unit["kind"] == "server" and (unit.get("server") or "").lower() == server.lower()), None)
    if not pool:
        return
    parts = []
    if pool.get("cpu_cores"):
        parts.append(f"{pool['cpu_cores']['free']} of {pool['cpu_cores']['capacity']} CPU cores")
    if pool.get("memory_gib"):
        parts.append(f"{pool['memory_gib']['free']} of {pool['memory_gib']['capacity']} GiB")
    say(f"Pool: {' and '.join(parts)} free throughout the next 24 h (book with --cpus N --mem 64G).")


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


# --- claim and book ------------------------------------------------------------------------


def claim(args: Namespace) -> int:
    """Book units from now for a duration (1h unless -d says)."""
    server, indices = target_of(args.target)
    duration, _ = duration_of(args.duration or CLAIM_DURATION)
    shares = shares_body(args)
    client = connect(args)
    body = {**target_body(server, indices), **shares, "duration": duration, "purpose": args.reason or "", "source": "cli"}
    booking = client.post("claims/", body)
    return _report(args, "Booked", booking)


def book(args: Namespace) -> int:
    """Book units for a later (or the present) time: --start plus --end or -d."""
    server, indices = target_of(args.target)
    now = times.local_now()
    start_text, start = times.parse_time(args.start, now=now)
    body = {**target_body(server, indices), **shares_body(args), "start": start_text, "purpose": args.reason or "", "source": "cli"}
    if args.duration:
        body["duration"], _ = duration_of(args.duration)
    else:
        body["end"], _ = times.parse_time(args.end, now=now, after=start)
    booking = connect(args).post("bookings/", body)
    return _report(args, "Booked", booking)


def _report(args: Namespace, verb: str, booking: dict[str, Any]) -> int:
    if args.json:
        emit_json(booking)
    else:
        waiting = " It awaits approval by staff; you will be told when they decide." if booking.get("status") == "pending" else ""
        say(f"{verb} {describe(booking, times.local_now())}.{waiting}")
    return 0


# --- release, extend, cancel, mine ------------------------------------------------------------


def release(args: Namespace) -> int:
    """End a booking now (cancel it if it has not started), or your running bookings on a target."""
    client = connect(args)
    if args.what and args.what.lstrip("#").isdigit():
        booking = end_booking(client, booking_id_of(args.what))
        return _report(args, _ENDED_VERB.get(booking["state"], "Ended"), booking)
    server, indices = target_of(args.what)
    running = client.get_all("bookings/", mine=1, state="running", server=server)
    held = [booking for booking in running if _overlaps(booking, indices)]
    if not held:
        say(f"Nothing to release: you hold nothing on {label_of(server, indices)} now.", err=True)
        if args.json:
            emit_json([])
        return 0
    released = [client.post(f"bookings/{booking['id']}/release/") for booking in held]
    if args.json:
        emit_json(released)
    else:
        for booking in released:
            say(f"Released #{booking['id']} {booking['what']}.")
    return 0


_ENDED_VERB = {"released": "Released", "cancelled": "Cancelled"}


def end_booking(client: Client, booking_id: int) -> Any:
    """Release a running booking, cancel one that has not started; returns the booking as it is now."""
    booking = client.get(f"bookings/{booking_id}/")
    if booking["state"] in ("upcoming", "pending"):
        return client.post(f"bookings/{booking_id}/cancel/")
    if booking["state"] == "running":
        return client.post(f"bookings/{booking_id}/release/")
    done = {"ended": "has ended", "released": "was released", "cancelled": "was cancelled"}.get(booking["state"], f"is {booking['state']}")
    raise CliError(f"booking #{booking_id} {done} already; nothing to release")


def _overlaps(booking: dict[str, Any], indices: list[int] | None) -> bool:
    """Whether a booking holds any of the asked GPUs (any booking on the server when none are asked)."""
    if indices is None or booking.get("whole_server"):
        return True
    try:
        held = parse_device_set(booking["devices"]) if booking.get("devices") else []
    except ParseError:
        return True
    return bool(set(held) & set(indices))


def extend(args: Namespace) -> int:
    """Move a booking's end later by -d (default 1h) or to --end."""
    booking_id = booking_id_of(args.id)
    if args.end:
        end_text, _ = times.parse_time(args.end, now=times.local_now())
        body = {"end": end_text}
    else:
        body = {"duration": duration_of(args.duration or "1h")[0]}
    booking = connect(args).post(f"bookings/{booking_id}/extend/", body)
    return _report(args, "Extended", booking)


def cancel(args: Namespace) -> int:
    """Cancel a booking that has not started."""
    booking = connect(args).post(f"bookings/{booking_id_of(args.id)}/cancel/")
    return _report(args, "Cancelled", booking)


def mine(args: Namespace) -> int:
    """Your running and upcoming bookings."""
    client = connect(args)
    bookings = client.get_all("bookings/", mine=1, state="running") + client.get_all("bookings/", mine=1, state="upcoming")
    bookings += client.get_all("bookings/", mine=1, state="pending")  # awaiting approval
    if args.json:
        emit_json(bookings)
        return 0
    if not bookings:
        say("You have no running or upcoming bookings.")
        return 0
    now = times.local_now()
    for booking in bookings:
        say(f"{booking['state']:<9} {describe(booking, now)}")
    return 0


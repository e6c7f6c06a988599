"""`labres prompt`: a marker for the shell prompt when someone else holds this host now.

It runs before every prompt, so it answers from a cache younger than LABRES_PROMPT_TTL
seconds (10) when it can, waits at most LABRES_PROMPT_TIMEOUT seconds (2) for the portal,
and on any failure prints nothing and exits 0: a prompt must never break the shell.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time

from . import times
from .client import Client
from .config import cache_dir, default_server, portal, write_private
from .output import clean

TYPE_CHECKING = False  # typing is for mypy only: the CLI starts fast without importing it
if TYPE_CHECKING:
    from argparse import Namespace
    from pathlib import Path
    from typing import Any

    from .config import Portal

RED, RESET = "\033[31m", "\033[0m"
# Bash and zsh must be told the colour codes take no room, or line editing goes astray.
INVISIBLE = {"bash": ("\001", "\002"), "zsh": ("%{", "%}"), "plain": ("", "")}


def prompt(args: Namespace) -> int:
    try:
        holders = _holders(args)
        if holders:
            sys.stdout.write(render(holders, shell=args.shell, colour=not os.environ.get("NO_COLOR")))
    except Exception:  # noqa: BLE001 -- whatever went wrong, the prompt stays usable
        pass
    return 0


def render(holders: list[str], *, shell: str = "plain", colour: bool = True) -> str:
    """'!alice ' (red unless NO_COLOR), '!alice,bob ' for two, '!alice+2 ' for more."""
    holders = [clean(holder) for holder in holders]
    text = "!" + (",".join(holders) if len(holders) <= 2 else f"{holders[0]}+{len(holders) - 1}")
    if colour:
        start, end = INVISIBLE[shell]
        text = f"{start}{RED}{end}{text}{start}{RESET}{end}"
    return text + " "


def _holders(args: Namespace) -> list[str]:
    """The user names, other than the caller's, holding a unit of the server now; cached per portal, token and server."""
    server = args.server or default_server()
    found = portal(getattr(args, "url", None), getattr(args, "token", None))
    # One cache file per portal, token (so per member) and server: whoever else shares the home
    # directory, or this member with another portal, never reads an answer meant for someone else.
    key = hashlib.sha256("\n".join([found.url, found.token, server.lower()]).encode()).hexdigest()[:32]
    path = cache_dir() / f"prompt-{key}.json"
    ttl = float(os.environ.get("LABRES_PROMPT_TTL") or 10)
    cached = _read(path)
    if cached and cached.get("key") == key and 0 <= time.time() - cached.get("at", 0) < ttl:
        return [str(holder) for holder in cached["holders"]]
    holders: list[str] = []  # a failure is cached too: a portal that is down must not slow every prompt
    try:
        holders = _ask(found, server)
    finally:
        try:
            write_private(path, json.dumps({"at": time.time(), "key": key, "holders": holders}))
        except OSError:
            pass  # no cache then, but still an answer
    return holders


def _ask(found: Portal, server: str) -> list[str]:
    client = Client(found.url, found.token, username=found.username, timeout=float(os.environ.get("LABRES_PROMPT_TIMEOUT") or 2))
    availability = client.get("availability/", server=server)
    now = times.from_api(availability["start"])
    users = {
        busy["user"]
        for unit in availability["units"]
        if (unit.get("server") or "").lower() == server.lower()
        for busy in unit["busy"]
        if times.from_api(busy["start"]) <= now < times.from_api(busy["end"])
    }
    if not users:
        return []
    me = client.username or client.get("me/")["username"]
    return sorted(users - {me})


def _read(path: Path) -> Any:
    """The cached answer, if the file is this user's own and no one else may write it; else None."""
    try:
        with path.open() as file:
            stat = os.fstat(file.fileno())
            if stat.st_uid != os.getuid() or stat.st_mode & 0o022:
                return None
            return json.loads(file.read())
    except (OSError, ValueError):
        return None

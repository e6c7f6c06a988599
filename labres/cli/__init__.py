"""`labres`, the command line for the lab's portal: who holds this host, claim GPUs, run a job on them.

It talks to the JSON API (docs/api-contract.md) with the standard library only and imports
neither Django nor Celery, so it starts fast on GPU hosts.
"""
from __future__ import annotations

import argparse
import os
import sys

from .errors import CliError
from .output import warn

TYPE_CHECKING = False  # typing is for mypy only: the CLI starts fast without importing it
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

EPILOG = """\
exit codes: 0 done (status: the units are free or yours), 1 someone else holds them,
            2 error; `run` exits with the command's own code.
config:     LABRES_URL and LABRES_TOKEN, or the file `labres login` writes
            (~/.config/labres/config.json, or $LABRES_CONFIG); LABRES_SERVER names this
            host's server when its short host name does not.
"""

RUN_EPILOG = """\
The booking is claimed for a lease (LABRES_RUN_LEASE, 30m; or -d if shorter) and renewed
by the lease when less than LABRES_RUN_RENEW_BEFORE (5m) is left, checked every
LABRES_RUN_HEARTBEAT seconds (30), never past -d. It is released when the command ends;
Ctrl-C and SIGTERM reach the command, and labres waits for it before releasing. The
command sees LABRES_BOOKING and CUDA_VISIBLE_DEVICES set to the booked GPUs (whatever was
set; empty for CPU cores or memory alone), with CUDA_DEVICE_ORDER=PCI_BUS_ID.
On units you hold already, it runs inside your booking and leaves it yours afterwards
(extended while the command outlasts it, and then ended with the command).
--wait tries again every LABRES_WAIT_INTERVAL seconds (30).

example: labres run thalys:0-1 -d 8h -r "train resnet" -- python train.py
"""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is the command `labres run` runs, untouched by argparse.
    command = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json = getattr(args, "json", False)
    args.url = getattr(args, "url", None)
    args.token = getattr(args, "token", None)
    name = args.command or "status"
    if name == "run" and not command:
        parser.error("give the command after --, e.g. labres run thalys:0 -- python train.py")
    if name != "run" and command is not None:
        parser.error("only `labres run` takes a command after --")
    try:
        return dispatch(name, args, command)
    except CliError as error:
        for line in error.lines():
            warn(line)
        return error.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except KeyError as error:
        warn(f"the portal's answer has no {error}; is it a labres portal of another version?")
        return 2
    except BrokenPipeError:
        # `labres mine | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # noqa: BLE001 -- one line, not a traceback, unless asked for
        if os.environ.get("LABRES_DEBUG"):
            raise
        warn(f"unexpected error: {error.__class__.__name__}: {error} (LABRES_DEBUG=1 shows more)")
        return 2


def dispatch(name: str, args: argparse.Namespace, command: list[str] | None) -> int:
    if name == "prompt":
        from .prompt import prompt

        return prompt(args)
    if name == "run":
        from .run import run

        assert command is not None  # main() refuses `run` without one
        return run(args, command)
    from . import commands

    if name == "status":
        args.target = getattr(args, "target", None)
    subcommand: Callable[[argparse.Namespace], int] = getattr(commands, name)
    return subcommand(args)


def build_parser() -> argparse.ArgumentParser:
    # The common options go on the main parser and on every subcommand, so both
    # `labres --json status` and `labres status --json` work.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="the portal's address (default: LABRES_URL, else the config file)")
    common.add_argument("--token", default=argparse.SUPPRESS, help="API token (default: LABRES_TOKEN, else the config file)")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON")

    parser = argparse.ArgumentParser(
        prog="labres",
        description="Book and use the lab's GPUs, servers and rooms. Without a subcommand: `labres status`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common, output],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, help: str, *, parents: Sequence[argparse.ArgumentParser] = (common, output), **kwargs: Any
    ) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=list(parents), **kwargs)

    target_help = "SERVER or SERVER:GPUS, e.g. thalys or thalys:0-1 (default: this host, whole server)"

    def add_shares(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cpus", metavar="N", help="CPU cores of the server's pool, with the GPUs or alone (SERVER without GPUs)")
        p.add_argument("--mem", metavar="SIZE", help="memory of the server's pool: 64G, 64GiB, 1T (a bare number is GiB)")

    p = add("status", "Who holds what on a server now and next; exit 0 if the units are free or yours, 1 if not.")
    p.add_argument("target", nargs="?", metavar="SERVER[:GPUS]", help=target_help)

    p = add("claim", "Book units from now (for 1h unless -d says).")
    p.add_argument("target", nargs="?", metavar="SERVER[:GPUS]", help=target_help)
    p.add_argument("-d", "--duration", help="how long, e.g. 30m, 2h, 1h30m, 1d (default 1h)")
    p.add_argument("-r", "--reason", help="what for; others see it")
    add_shares(p)

    p = add("book", "Book units for a time: --start plus --end or -d.")
    p.add_argument("target", metavar="SERVER[:GPUS]", help="SERVER or SERVER:GPUS, e.g. thalys:0-1")
    p.add_argument("--start", required=True, help="now, 14:00 (today, or tomorrow if past), 'tomorrow 09:30', 2026-11-24T14:00")
    until = p.add_mutually_exclusive_group(required=True)
    until.add_argument("--end", help="like --start; 14:00 means the next 14:00 after the start")
    until.add_argument("-d", "--duration", help="how long, e.g. 2h")
    p.add_argument("-r", "--reason", help="what for; others see it")
    add_shares(p)

    p = add("run", "Hold units while a command runs: claim, keep extended, release when it ends.", parents=[common], epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", metavar="SERVER[:GPUS]", help=target_help)
    p.add_argument("-d", "--duration", metavar="MAX", help="hold at most this long, e.g. 8h (default: as long as the command runs)")
    p.add_argument("-r", "--reason", help="what for; others see it (default: the command's name)")
    p.add_argument("--wait", action="store_true", help="if the units are taken, wait until they are free")
    add_shares(p)
    p.usage = "labres run [-h] [SERVER[:GPUS]] [-d MAX] [-r REASON] [--wait] [--cpus N] [--mem SIZE] -- COMMAND [ARG ...]"

    p = add("release", "End a booking now (one not started yet is cancelled), or your running bookings on SERVER[:GPUS].")
    p.add_argument("what", nargs="?", metavar="ID | SERVER[:GPUS]", help="a booking number, or a target (default: this host)")

    p = add("extend", "Move a booking's end later.")
    p.add_argument("id", metavar="ID", help="the booking number")
    by = p.add_mutually_exclusive_group()
    by.add_argument("-d", "--duration", help="by how much (default 1h)")
    by.add_argument("--end", help="the new end, like book --start")

    p = add("cancel", "Cancel a booking that has not started.")
    p.add_argument("id", metavar="ID", help="the booking number")

    add("mine", "Your running and upcoming bookings.")

    p = add("prompt", "A marker for the shell prompt when someone else holds this host (see the README).", parents=[common])
    p.add_argument("server", nargs="?", metavar="SERVER", help="default: this host")
    p.add_argument("--shell", choices=["bash", "zsh", "plain"], default="plain", help="wrap colour codes for bash's or zsh's prompt")

    p = add("login", "Ask for the portal, user name and password (or take a token from the profile page); save a token for this user.",
            parents=[common])
    p.add_argument("--username", help="default: asked (the saved one, else your login name)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input (else LABRES_PASSWORD, else asked)")
    p.add_argument("--with-token", action="store_true",
                   help="save an API token made on your profile page (single sign-on members), read from standard input or asked for")
    return parser


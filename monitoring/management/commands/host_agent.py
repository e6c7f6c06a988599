"""manage.py host_agent: the Celery worker a GPU host runs to sample its own GPUs.

It consumes only this host's queue, host.<name>: beat's sample_all_hosts puts one
sample_host message there every TELEMETRY_INTERVAL_SECONDS, with an expiry of one interval,
so a host that was down does not replay a backlog. The name is --server, else $LABRES_HOST,
else the short host name. On start the server is created if the portal does not know it
yet; its first reading registers its GPUs.
"""
import os
import socket

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_slug

from reservations.models import Server

QUEUE_PREFIX = "host."
ALL_HOSTS_WORKER = "hosts"  # the worker's name with --all (the demo's simulated hosts)


def queue_of(name):
    """The queue a host agent for server `name` consumes (sample_all_hosts sends there)."""
    return f"{QUEUE_PREFIX}{name}"


def agent_name(server=None):
    """The server name this agent samples for: `server`, else $LABRES_HOST, else the short host name.

    Raises CommandError for a name that cannot be a server name (a slug, at most 64 characters).
    """
    name = server or os.environ.get("LABRES_HOST") or socket.gethostname().split(".")[0]
    name = name.strip()
    try:
        validate_slug(name)
    except ValidationError:
        raise CommandError(
            f"'{name}' cannot be a server name: use letters, digits, '-' and '_' only, as in the portal "
            "(pass --server NAME or set LABRES_HOST)."
        ) from None
    if len(name) > Server._meta.get_field("name").max_length:
        raise CommandError(f"'{name}' is too long for a server name (at most 64 characters).")
    return name


def monitored_server_names():
    """Every server beat sends sampling messages to: active and monitored."""
    return list(Server.objects.filter(active=True, monitored=True).order_by("name").values_list("name", flat=True))


def worker_plan(server=None, *, all_hosts=False):
    """(worker node name, [queues]) for one host, or with all_hosts for every monitored server."""
    if all_hosts:
        names = monitored_server_names()
        if not names:
            raise CommandError("No active, monitored servers: nothing for --all to sample. Run seed_demo or add servers first.")
        return f"{ALL_HOSTS_WORKER}@%h", [queue_of(name) for name in names]
    name = agent_name(server)
    return f"host-{name}@%h", [queue_of(name)]


def worker_argv(node, queues, *, concurrency=1, loglevel="INFO", pool="prefork"):
    """The `celery worker` arguments of a host agent; also what the README's equivalent command spells out."""
    return [
        "worker",
        "--hostname", node,
        "--queues", ",".join(queues),
        "--pool", pool,
        "--concurrency", str(concurrency),
        "--without-gossip",  # hosts do not talk to each other,
        "--without-mingle",  # nor sync revoked ids on start: the messages expire anyway
        "--loglevel", loglevel,
    ]


class Command(BaseCommand):
    help = "Run this GPU host's agent: a Celery worker consuming the host's own sampling queue, host.<name>."

    def add_arguments(self, parser):
        parser.add_argument("--server", metavar="NAME", help="The server's name in the portal (default: $LABRES_HOST, else the short host name).")
        parser.add_argument(
            "--all", action="store_true", dest="all_hosts",
            help="Consume the queues of every active, monitored server (the demo's simulated hosts, LABRES_NVML=fake).",
        )
        parser.add_argument("--concurrency", type=int, default=1, help="Worker processes (default 1; one reading at a time is enough).")
        parser.add_argument(
            "--loglevel", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
            help="Celery's log level (default INFO).",
        )
        parser.add_argument(
            "--pool", default="prefork", choices=["prefork", "threads", "solo"],
            help="Celery's pool (default prefork). The demo runs threads: no child processes to stop on Ctrl-C.",
        )

    def handle(self, *args, server=None, all_hosts=False, concurrency=1, loglevel="INFO", pool="prefork", **options):
        if all_hosts and server:
            raise CommandError("Pass either --server NAME or --all, not both.")
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        node, queues = worker_plan(server, all_hosts=all_hosts)
        if not all_hosts:
            self.register(queues[0].removeprefix(QUEUE_PREFIX))
        self.stdout.write(f"Host agent {node} consuming {', '.join(queues)}.")
        self.stdout.flush()

        from labres.celery import app

        # In this process, so the worker runs with these settings; app.start is `celery worker` and
        # gives its exit status back (app.worker_main drops it).
        status = app.start(worker_argv(node, queues, concurrency=concurrency, loglevel=loglevel, pool=pool))
        if status:
            raise SystemExit(status)

    def register(self, name):
        """Make sure the portal knows this server, and say so when beat will not send it anything."""
        here = socket.gethostname()
        server, created = Server.objects.get_or_create(name=name, defaults={"hostname": "" if here == name else here})
        if created:
            self.stdout.write(f"Registered the new server {name}; its GPUs appear with its first reading.")
        if not (server.active and server.monitored):
            self.stderr.write(self.style.WARNING(
                f"{name} is {'inactive' if not server.active else 'not monitored'} in the portal: beat sends it no "
                "sampling messages until staff change that in the admin."
            ))

"""manage.py seed_demo: a believable lab for the demo, with a week of bookings around now.

Servers, GPUs, rooms and users are created or brought back to their demo values on every
run. Bookings go through the booking services, so they obey the same rules as everyone's.
They are created once: while the demo users hold a booking that ends in the future, a
second run leaves bookings alone; --reset deletes the demo users' bookings and makes the
week again. Then the GPU servers get 30 days of telemetry history derived from the bookings
(monitoring.demo_history; only missing buckets are written), unless --no-history.
"""
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from monitoring.demo_history import backfill
from notifications.outbox import muted
from reservations import services
from reservations.errors import BookingError
from reservations.models import Allocation, Booking, Device, Limit, MemberGroup, Profile, Room, Server

# Deterministic fake GPU UUIDs, so a second run finds the same devices.
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "labres.lab.example.org")

SERVERS = [
    {
        "name": "thalys",
        "hostname": "thalys.lab.example.org",
        "location": "Machine room B, rack 3",
        "description": "8x A100 80GB, 2x AMD EPYC 7763, 2 TB RAM. For long multi-GPU training runs.",
        "gpus": 8,
        "model": "NVIDIA A100-SXM4-80GB",
        "memory_mib": 81920,
    },
    {
        "name": "eurostar",
        "hostname": "eurostar.lab.example.org",
        "location": "Machine room B, rack 1",
        "description": "4x RTX 4090, AMD Threadripper PRO 5975WX, 512 GB RAM. Good for prototyping and short jobs.",
        "gpus": 4,
        "model": "NVIDIA GeForce RTX 4090",
        "memory_mib": 24564,
    },
    {
        "name": "shinkansen",
        "hostname": "shinkansen.lab.example.org",
        "location": "Machine room B, rack 3",
        "description": "2x H100 80GB, 2x Intel Xeon Platinum 8480+, 1 TB RAM. For large models.",
        "gpus": 2,
        "model": "NVIDIA H100 80GB HBM3",
        "memory_mib": 81559,
        "requires_approval": True,  # members' bookings wait for staff (the demo leaves one pending)
    },
    {
        "name": "ice",
        "hostname": "ice.lab.example.org",
        "location": "Machine room B, rack 1",
        "description": "CPU only: 2x AMD EPYC 9654 (192 cores), 1.5 TB RAM. Preprocessing and big-memory jobs.",
        "gpus": 0,
        "monitored": False,  # no GPUs, no host agent: beat sends it nothing
        # Booked by the share: the timeline draws a usage band of its cores and memory.
        "cpu_cores": 192,
        "memory_gib": 1536,
    },
]

ROOMS = [
    {"name": "Seminar room", "capacity": 12, "location": "Building 2, room 2.14", "description": "Projector and whiteboard."},
    {"name": "Lab 2", "capacity": 6, "location": "Building 2, room 0.07", "description": "Robot arms and the VR rig."},
]

# username, password, first name, last name, staff; members log in to the GPU hosts under their
# user name, so the demo's simulated processes are matched to their bookings.
UNIX_USERS = ("alice", "bob", "carol")
USERS = [
    ("admin", "demo-admin", "Ada", "Admin", True),
    ("alice", "demo-alice", "Alice", "Liddell", False),
    ("bob", "demo-bob", "Bob", "Marley", False),
    ("carol", "demo-carol", "Carol", "Danvers", False),
]


# A group with limits, so that fair use shows: its members are refused (and told why) past them. The demo
# week below keeps within them.
STUDENTS = "Students"
STUDENT_USERS = ("bob", "carol")
STUDENT_LIMITS = [(Limit.Kind.MAX_GPUS, 4, ""), (Limit.Kind.MAX_LENGTH, None, "12h"), (Limit.Kind.GPU_HOURS_WEEK, 120, "")]


@dataclass(frozen=True)
class DemoBooking:
    """One booking of the demo week. `day` counts from today; `at` is the local start time.

    A booking with `relative_hours` set starts that many hours from the current hour instead,
    so that the demo always has something running or starting soon, whatever the time.
    """

    user: str
    hours: float
    purpose: str
    day: int = 0
    at: int = 9
    relative_hours: int | None = None
    server: str | None = None
    devices: str | None = None
    room: str | None = None
    source: str = Booking.Source.WEB
    release_after_hours: float | None = None
    cpu_cores: int = 0  # shares of the server's pools (ice declares them)
    memory_gib: int = 0
    awaits_approval: bool = False  # made once its server requires approval; the others were approved before


S = Booking.Source
# Past days hold daytime bookings only, so none of them reaches today; the two bookings placed
# relative to the current hour use units that no other booking holds between yesterday evening
# and tomorrow morning. Keep it that way when adding to the week, or the services will refuse.
WEEK = [
    # Six days ago
    DemoBooking("alice", 10, "training resnet-50 on ImageNet", day=-6, at=9, server="thalys", devices="0-3"),
    DemoBooking("bob", 4, "debugging the data loader", day=-6, at=14, server="eurostar", devices="0-1", source=S.CLI),
    DemoBooking("carol", 1, "group meeting", day=-6, at=10, room="Seminar room"),
    # Five days ago
    DemoBooking("alice", 24, "LLM fine-tuning (llama-3 8B)", day=-5, at=8, server="shinkansen", source=S.API),
    DemoBooking("bob", 8, "ablation sweep: learning rates", day=-5, at=9, server="thalys", devices="4-7", source=S.CLI),
    DemoBooking("carol", 3, "notebook: attention maps", day=-5, at=10, server="eurostar", devices="2"),
    # Four days ago
    DemoBooking("admin", 3, "driver update (CUDA 12.4)", day=-4, at=7, server="eurostar"),
    DemoBooking("carol", 6, "training ViT-B/16", day=-4, at=10, server="thalys", devices="0-1", source=S.SLACK),
    # Three days ago
    DemoBooking("alice", 5, "hyperparameter search", day=-3, at=13, server="eurostar", devices="0-3", source=S.API),
    DemoBooking("bob", 2, "robot arm calibration", day=-3, at=14, room="Lab 2"),
    DemoBooking("carol", 8, "ablation sweep: seeds 0-4", day=-3, at=9, server="thalys", devices="4-7", release_after_hours=5),
    DemoBooking("alice", 1, "reading group", day=-3, at=10, room="Seminar room", source=S.SLACK),
    # Two days ago
    DemoBooking("bob", 10, "preprocessing COCO", day=-2, at=9, server="ice", source=S.CLI),
    DemoBooking("alice", 6, "evaluating checkpoints", day=-2, at=10, server="shinkansen", devices="0"),
    # Yesterday
    DemoBooking("carol", 8, "reproducing the baseline", day=-1, at=9, server="eurostar", devices="1"),
    DemoBooking("bob", 5, "training resnet-50 (mixed precision)", day=-1, at=10, server="thalys", devices="0-1", source=S.CLI),
    # Running now: from two days ago to tomorrow morning, and a short one around the current hour
    DemoBooking("alice", 63, "ablation sweep: weight decay x dropout", day=-2, at=18, server="thalys", devices="4-7", source=S.CLI),
    DemoBooking("bob", 5, "training a diffusion model", relative_hours=-2, server="eurostar", devices="2-3"),
    # Shares of ice's 192 cores and 1.5 TB around now, overlapping: the timeline's usage band steps up and down
    DemoBooking("carol", 5, "tokenizing the speech corpus", relative_hours=-1, server="ice", cpu_cores=64, memory_gib=256, source=S.CLI),
    DemoBooking("alice", 3, "feature extraction", relative_hours=2, server="ice", cpu_cores=96, memory_gib=768, source=S.SLACK),
    # Later today
    DemoBooking("carol", 2, "quick inference benchmark", relative_hours=4, server="shinkansen", devices="1", source=S.API),
    # Coming days
    DemoBooking("carol", 12, "training resnet-50 (full schedule)", day=1, at=9, server="thalys", devices="0-3"),
    DemoBooking("alice", 1, "group meeting", day=1, at=10, room="Seminar room", source=S.SLACK),
    DemoBooking("bob", 8, "ablation sweep: optimizers", day=1, at=10, server="thalys", devices="4-7", source=S.CLI),
    DemoBooking("alice", 24, "multi-GPU test: 8-GPU DDP", day=2, at=8, server="thalys", source=S.API),
    DemoBooking("carol", 10, "LLM fine-tuning (LoRA sweep)", day=2, at=9, server="shinkansen", devices="0-1"),
    DemoBooking("bob", 2, "student project demo", day=3, at=14, room="Lab 2"),
    DemoBooking("alice", 8, "rendering figures for the paper", day=3, at=9, server="eurostar", devices="0"),
    DemoBooking("admin", 4, "OS upgrade (Ubuntu 24.04)", day=4, at=8, server="ice"),
    DemoBooking("carol", 6, "training a speech model", day=5, at=9, server="eurostar", devices="1-3", source=S.SLACK),
    # Awaiting approval (shinkansen requires it): staff see it in the admin and on its decide page
    DemoBooking("bob", 6, "training a 13B model (both H100s)", day=3, at=9, server="shinkansen", awaits_approval=True),
]


class Command(BaseCommand):
    help = "Create a demo lab (servers, GPUs, rooms, users with known passwords) and a week of bookings around now."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="Delete the demo users' bookings first, then make the week again.")
        parser.add_argument(
            "--force", action="store_true", help="Run even with DEBUG off. The demo accounts have well-known passwords."
        )
        parser.add_argument("--no-history", action="store_true", help="Do not write the 30 days of telemetry history.")

    def handle(self, *args, reset=False, force=False, no_history=False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates accounts with well-known passwords (admin / demo-admin) and only runs with DEBUG=1. "
                "Pass --force to run it anyway."
            )
        now = timezone.now()
        with transaction.atomic():
            servers = [self.seed_server(spec) for spec in SERVERS]
            rooms = [self.seed_room(spec) for spec in ROOMS]
            users = {username: self.seed_user(username, password, first, last, staff) for username, password, first, last, staff in USERS}
            self.stdout.write(f"Lab: {', '.join(_describe(s) for s in servers)}; rooms: {', '.join(r.name for r in rooms)}.")
            self.seed_group([users[name] for name in STUDENT_USERS])
            if reset:
                deleted = self.delete_bookings(users.values())
                self.stdout.write(f"Deleted {deleted} bookings of the demo users.")
            if Booking.objects.holding().filter(user__in=users.values(), end__gt=now).exists():
                self.stdout.write("The demo users already have current or upcoming bookings; leaving bookings as they are (--reset makes them again).")
            else:
                with muted():  # a demo week made up at once is not news to anyone
                    self.seed_week(users, now)
        if not no_history:
            self.seed_history([server for server in servers if server.monitored], now)
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Demo logins: " + ", ".join(_login(u) for u in USERS)))

    def seed_server(self, spec):
        server, _ = Server.objects.update_or_create(
            name=spec["name"],
            defaults={
                "hostname": spec["hostname"],
                "location": spec["location"],
                "description": spec["description"],
                "active": True,
                "monitored": spec.get("monitored", True),
                "cpu_cores": spec.get("cpu_cores"),
                "memory_gib": spec.get("memory_gib"),
                "requires_approval": spec.get("requires_approval", False),
            },
        )
        for index in range(spec["gpus"]):
            Device.objects.update_or_create(
                server=server,
                index=index,
                defaults={
                    "model": spec["model"],
                    "memory_mib": spec["memory_mib"],
                    "uuid": f"GPU-{uuid.uuid5(UUID_NAMESPACE, f'{server.name}:{index}')}",
                    "active": True,
                },
            )
        return server

    def seed_room(self, spec):
        room, _ = Room.objects.update_or_create(name=spec["name"], defaults={**spec, "active": True})
        return room

    def seed_user(self, username, password, first_name, last_name, staff):
        user, _ = get_user_model().objects.update_or_create(
            username=username,
            defaults={
                "first_name": first_name,
                "last_name": last_name,
                "email": f"{username}@lab.example.org",
                "is_staff": staff,
                "is_superuser": staff,
                "is_active": True,
            },
        )
        # Reset on every run, so the logins printed at the end always work.
        user.set_password(password)
        user.save(update_fields=["password"])
        if username in UNIX_USERS:
            self.seed_unix_username(user, username)
        return user

    def seed_group(self, members):
        """The Students group with its limits, brought back to the demo's values; its members' primary group."""
        group, _ = MemberGroup.objects.update_or_create(
            name=STUDENTS, defaults={"parent": None, "description": "The demo's students: fair-use limits apply."},
        )
        for kind, number, duration in STUDENT_LIMITS:
            Limit.objects.update_or_create(
                kind=kind, group=group, user=None, server=None, room=None, defaults={"number": number, "duration": duration},
            )
        Profile.objects.filter(user__in=members).update(group=group)
        self.stdout.write(
            f"Group {group.name} ({', '.join(m.username for m in members)}): at most 4 GPUs at once, 12h a booking, 120 GPU-hours a week."
        )
        return group

    def seed_unix_username(self, user, unix_username):
        """The member's user name on the GPU hosts, unless another member of this database has it."""
        if Profile.objects.filter(unix_username=unix_username).exclude(user=user).exists():
            self.stdout.write(self.style.WARNING(f"Another member has the unix user name {unix_username}; {user.username} keeps theirs."))
            return
        Profile.objects.update_or_create(user=user, defaults={"unix_username": unix_username})

    def seed_history(self, servers, now):
        """30 days of hourly and 2 days of per-minute telemetry for the GPU servers, from the bookings."""
        written = backfill(servers, now)
        if not any(written.values()):
            self.stdout.write("Telemetry history is already there; nothing to add.")
            return
        self.stdout.write(
            f"Telemetry history: {written['hours']:,} hourly and {written['minutes']:,} per-minute GPU rollups "
            "(the last 30 and 2 days)."
        )

    def delete_bookings(self, users):
        bookings = Booking.objects.filter(user__in=users)
        Allocation.objects.filter(booking__in=bookings).delete()
        deleted, _ = bookings.delete()
        return deleted

    def seed_week(self, users, now):
        """Create the demo week through the booking services; a slot someone else holds is skipped."""
        today = timezone.localtime(now).date()
        this_hour = now.replace(minute=0, second=0, microsecond=0)
        counts = {"past": 0, "running": 0, "upcoming": 0}
        skipped = []
        # The demo's history was approved as it was made: book it with approval off, then ask for the rest.
        approving = list(Server.objects.filter(requires_approval=True).values_list("pk", flat=True))
        Server.objects.filter(pk__in=approving).update(requires_approval=False)
        week = [item for item in WEEK if not item.awaits_approval]
        for item in week + [None] + [item for item in WEEK if item.awaits_approval]:
            if item is None:
                Server.objects.filter(pk__in=approving).update(requires_approval=True)
                continue
            if item.relative_hours is not None:
                start = this_hour + timedelta(hours=item.relative_hours)
            else:
                start = datetime.combine(today + timedelta(days=item.day), time(item.at), tzinfo=timezone.get_current_timezone())
            end = start + timedelta(hours=item.hours)
            try:
                # A booking in the past is made as it would have been: at its start.
                booking = services.create_booking(
                    users[item.user],
                    start=start,
                    end=end,
                    purpose=item.purpose,
                    server=item.server,
                    devices=item.devices,
                    room=item.room,
                    cpu_cores=item.cpu_cores,
                    memory_gib=item.memory_gib,
                    source=item.source,
                    now=min(start, now),
                )
                if item.release_after_hours is not None:
                    booking = services.release_booking(booking, by=users[item.user], now=start + timedelta(hours=item.release_after_hours))
            except BookingError as error:
                skipped.append(f"{item.purpose}: {error.message}")
                continue
            if booking.status == Booking.Status.PENDING:
                counts["awaiting approval"] = counts.get("awaiting approval", 0) + 1
                continue
            counts["past" if booking.end <= now else "running" if booking.start <= now else "upcoming"] += 1
        created = sum(counts.values())
        waiting = f", {counts['awaiting approval']} awaiting approval" if counts.get("awaiting approval") else ""
        self.stdout.write(
            f"Created {created} bookings: {counts['past']} past, {counts['running']} running, {counts['upcoming']} upcoming{waiting}."
        )
        for line in skipped:
            self.stdout.write(self.style.WARNING(f"Skipped {line}"))


def _describe(server):
    gpus = server.devices.count()
    return f"{server.name} ({gpus} GPUs)" if gpus else f"{server.name} (CPU only)"


def _login(user_row):
    username, password, _, _, staff = user_row
    return f"{username} / {password}" + (" (staff)" if staff else "")

"""labres settings: every knob comes from the environment, with a default that works on a laptop.

Production sets DATABASE_URL (PostgreSQL), REDIS_URL, SECRET_KEY, ALLOWED_HOSTS; see README.
"""
import importlib.util
import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from kombu import Queue
from django.core.exceptions import ImproperlyConfigured

from labres.private_files import private_file, private_folder

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# Where the embedded defaults keep their files (SQLite database, Celery broker folder, cache);
# labres's user's alone: the folder 0700, the database and mail files 0600 (labres/private_files.py).
VAR_DIR = Path(env.str("LABRES_VAR_DIR", default=str(BASE_DIR / "var")))
private_folder(VAR_DIR)

# --- Core -------------------------------------------------------------------------------
# DEBUG is off unless asked for; `make demo` asks for it.
DEBUG = env.bool("DEBUG", default=False)

# Required in production; a development key is used only when DEBUG is on.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random string, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, "
            "or set DEBUG=1 for local development."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "reservations",
    "monitoring",
    "notifications",
]

MIDDLEWARE = [
    "reservations.middleware.api_uri_length",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "reservations.middleware.member_time_zone",
    "reservations.middleware.audit_surface",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "labres.urls"
WSGI_APPLICATION = "labres.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.tz",
                "reservations.sso.oidc.sign_in_choices",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
# Default: a SQLite file under var/, in WAL mode, every transaction BEGIN IMMEDIATE so that
# booking writers serialize (the non-overlap check and the write happen under one lock).
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'labres.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests use a file, not shared-cache memory: racing threads need real SQLite locking.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    # Made 0600 before SQLite makes it (its -wal and -shm files take the database file's mode).
    if Path(DATABASES["default"]["NAME"]).parent.is_dir():
        private_file(DATABASES["default"]["NAME"])
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# The statements every booking runs are prepared once per connection on PostgreSQL (labres/db.py).
# Set 0 behind a pooler that shares sessions between clients (PgBouncer in transaction mode).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery --------------------------------------------------------------
# With REDIS_URL set, Redis is the Celery broker and the shared cache. Without it, the broker
# is a local folder (kombu's filesystem transport) and the cache is a folder too, so web,
# worker and beat processes on one machine share them with no server installed.
REDIS_URL = env.str("REDIS_URL", default="")

# Seconds a cache call to Redis may wait to connect or for an answer: a Redis that hangs costs
# a request this much, then the call fails (and what uses the cache carries on without it).
REDIS_TIMEOUT = env.float("REDIS_TIMEOUT", default=0.5)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CACHES = {
        "default": {
            # Django's file cache with an atomic add() (labres/cache.py); room for a lab's entries.
            "BACKEND": "labres.cache.FileCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        }
    }
    _broker_dir = VAR_DIR / "celery" / "broker"
    private_folder(VAR_DIR / "celery")
    private_folder(_broker_dir)
    CELERY_BROKER_URL = "filesystem://localhost//"  # the host names nothing; without it kombu warns on every connection
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
        # How long a worker sleeps when it finds nothing it may take; kombu's 1 s capped the
        # folder broker at about one task per second per worker process (bench/notifications.py).
        "polling_interval": env.float("BROKER_POLLING_INTERVAL", default=0.05),
    }

# Beat's periodic tasks have a queue of their own, which every portal worker consumes beside the
# default one, taking from each in turn: a backlog of deliveries never holds up a sweep or a reminder.
CELERY_TASK_DEFAULT_QUEUE = "celery"
PERIODIC_QUEUE = "periodic"
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in (CELERY_TASK_DEFAULT_QUEUE, PERIODIC_QUEUE)]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")
# How often each GPU host samples its GPUs; also the expiry of a sampling message, so a host
# that was down does not replay a backlog.
TELEMETRY_INTERVAL_SECONDS = env.int("TELEMETRY_INTERVAL_SECONDS", default=15)
# A host whose latest reading is older than this many intervals is shown (and reported) as stale.
TELEMETRY_STALE_INTERVALS = env.int("TELEMETRY_STALE_INTERVALS", default=3)
# How long each resolution is kept: raw samples briefly, per-minute rollups a while, hourly ones long.
TELEMETRY_RAW_RETENTION = env.str("TELEMETRY_RAW_RETENTION", default="48h")
TELEMETRY_MINUTE_RETENTION = env.str("TELEMETRY_MINUTE_RETENTION", default="14d")
TELEMETRY_HOUR_RETENTION = env.str("TELEMETRY_HOUR_RETENTION", default="365d")
# Live status of a GPU: idle below GPU_ACTIVE_PERCENT utilization, high load from GPU_HIGH_PERCENT.
GPU_ACTIVE_PERCENT = env.int("GPU_ACTIVE_PERCENT", default=5)
GPU_HIGH_PERCENT = env.int("GPU_HIGH_PERCENT", default=80)
# A running booking whose GPUs all stay under IDLE_BOOKING_PERCENT for IDLE_BOOKING_AFTER is idle.
IDLE_BOOKING_PERCENT = env.int("IDLE_BOOKING_PERCENT", default=5)
IDLE_BOOKING_AFTER = env.str("IDLE_BOOKING_AFTER", default="30m")
# How long the usage page keeps a computed report (seconds; 0: compute on every view).
USAGE_REPORT_CACHE_SECONDS = env.int("USAGE_REPORT_CACHE_SECONDS", default=300)
# Monitoring: the bearer token Prometheus sends to read /metrics; empty means only staff signed in may.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# --- Notifications -------------------------------------------------------------------------
# The portal's public address, for links in messages (Slack, e-mail) sent outside a request; unset, the
# address `make demo` serves on (DEMO_HOST, DEMO_PORT; a wildcard host is reached as localhost).
_DEMO_HOST = env.str("DEMO_HOST", default="localhost")
_DEMO_HOST = "localhost" if _DEMO_HOST in ("", "0.0.0.0", "::") else f"[{_DEMO_HOST}]" if ":" in _DEMO_HOST else _DEMO_HOST
SITE_URL = env.str("SITE_URL", default=f"http://{_DEMO_HOST}:{env.int('DEMO_PORT', default=8000)}").rstrip("/")
# E-mail: EMAIL_URL picks the backend (smtp://user:pass@host:587/?tls=True, consolemail://,
# filemail://, ...); without it, messages are written as files under var/mail (nothing leaves).
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="labres <labres@localhost>")
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "labres.private_files.FileEmailBackend"  # Django's, with the folder 0700 and files 0600
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
# Slack: the bot token (xoxb-...) for direct messages and channel posts; empty means no Slack bot.
SLACK_BOT_TOKEN = env.str("SLACK_BOT_TOKEN", default="")
# Slack bot: post successful /gpu claims and releases to the channel (else only the caller sees them).
SLACK_ANNOUNCE = env.bool("SLACK_ANNOUNCE", default=False)
# Slack's Web API address (tests point it at a local server).
SLACK_API_URL = env.str("SLACK_API_URL", default="https://slack.com/api/")
# Slack app: the signing secret that proves a request to /slack/ comes from Slack; empty refuses them all.
SLACK_SIGNING_SECRET = env.str("SLACK_SIGNING_SECRET", default="")
# Socket Mode's app-level token (xapp-..., scope connections:write), for `manage.py slack_socket`.
SLACK_APP_TOKEN = env.str("SLACK_APP_TOKEN", default="")
# The slash command's name as the Slack app declares it (shown in help and error replies).
SLACK_COMMAND = env.str("SLACK_COMMAND", default="/gpu")
# Reminders: how long before a booking starts, and before it ends (the expiry warning).
NOTIFY_STARTS_SOON = env.str("NOTIFY_STARTS_SOON", default="10m")
NOTIFY_ENDS_SOON = env.str("NOTIFY_ENDS_SOON", default="15m")
# Delivery: tries per message, and the first retry delay (doubling each try, at most an hour).
NOTIFY_MAX_ATTEMPTS = env.int("NOTIFY_MAX_ATTEMPTS", default=8)
NOTIFY_RETRY_SECONDS = env.int("NOTIFY_RETRY_SECONDS", default=30)
# Seconds one HTTP call to Slack may take before it counts as failed (and is retried later).
NOTIFY_HTTP_TIMEOUT = env.int("NOTIFY_HTTP_TIMEOUT", default=10)
# --- Calendars ------------------------------------------------------------------------------
# Feeds (/calendar/<secret>.ics) hold bookings that ended at most CALENDAR_HISTORY ago, and
# cancelled ones for CALENDAR_KEEP_CANCELLED after the cancellation, so clients remove them.
CALENDAR_HISTORY = env.str("CALENDAR_HISTORY", default="30d")
CALENDAR_KEEP_CANCELLED = env.str("CALENDAR_KEEP_CANCELLED", default="14d")
# How often calendar apps are asked to fetch a feed again (REFRESH-INTERVAL, X-PUBLISHED-TTL).
CALENDAR_REFRESH = env.str("CALENDAR_REFRESH", default="15m")
# Whether a server's, room's or the lab's feed shows the purpose of other members' bookings
# (off: "GPU thalys:0-1 — Alice", for a room screen or a lab that keeps purposes to itself).
CALENDAR_SHOW_OTHERS_PURPOSES = env.bool("CALENDAR_SHOW_OTHERS_PURPOSES", default=True)
# Import: how often followed calendars (Admin → External calendars) are fetched, how far ahead
# their events become bookings, and the limits on one fetch.
CALENDAR_IMPORT_INTERVAL = env.str("CALENDAR_IMPORT_INTERVAL", default="5m")
CALENDAR_IMPORT_HORIZON = env.str("CALENDAR_IMPORT_HORIZON", default="90d")
CALENDAR_IMPORT_TIMEOUT = env.int("CALENDAR_IMPORT_TIMEOUT", default=20)
CALENDAR_IMPORT_MAX_BYTES = env.int("CALENDAR_IMPORT_MAX_BYTES", default=10 * 1024 * 1024)

# Every periodic task lives here, in one place: on its own queue, and a run no worker took
# expires after one period (or `expires` seconds), so a stalled queue does not pile them up.
def _periodic(task, every, *, expires=None):
    return {"task": task, "schedule": every, "options": {"expires": int(every.total_seconds()) if expires is None else expires, "queue": PERIODIC_QUEUE}}


CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": _periodic("monitoring.tasks.heartbeat", timedelta(seconds=env.int("HEARTBEAT_SECONDS", default=30)), expires=30),
    # One message per monitored host on its own queue; an unconsumed one expires after an interval.
    "sample-all-hosts": _periodic("monitoring.tasks.sample_all_hosts", timedelta(seconds=TELEMETRY_INTERVAL_SECONDS)),
    # Idle bookings, unbooked use and stale hosts, from the latest readings.
    "detect-usage-alerts": _periodic("monitoring.tasks.detect_alerts", timedelta(minutes=1)),
    # Per-minute and hourly rollups of the recent past (idempotent: a bucket is recomputed whole).
    "rollup-telemetry": _periodic("monitoring.tasks.rollup_recent", timedelta(minutes=1)),
    # Actual use of the bookings that ended, stored once on each.
    "settle-booking-usage": _periodic("monitoring.tasks.settle_booking_usage", timedelta(minutes=5)),
    # The usage page's one-click periods, recomputed a little before the cached ones expire.
    "warm-usage-reports": _periodic("monitoring.tasks.warm_usage_reports", timedelta(minutes=4)),
    # Starts-soon, ends-soon and ended reminders over a window; unique keys make re-runs harmless.
    "send-reminders": _periodic("notifications.tasks.send_reminders", timedelta(minutes=1)),
    # Messages still due: never handed to a worker (broker down), or waiting for a retry.
    "sweep-outbox": _periodic("notifications.tasks.sweep_outbox", timedelta(seconds=env.int("NOTIFY_SWEEP_SECONDS", default=30)), expires=30),
    # Members' Slack ids, found from their e-mail (users.lookupByEmail) once a bot token is set.
    "link-slack-members": _periodic("notifications.tasks.link_slack_members", timedelta(hours=6), expires=3600),
    # Followed external calendars (ICS addresses) that are due, turned into bookings.
    "sync-calendars": _periodic("reservations.tasks.sync_calendars", timedelta(minutes=1)),
    # Waitlist: offers that ran out pass to the next in line, entries past their latest start lapse,
    # and anything that frees up without a booking change (the backstop of the after-commit task).
    "match-waitlists": _periodic("reservations.tasks.match_waitlists", timedelta(minutes=1)),
    "prune-telemetry": _periodic("monitoring.tasks.prune_telemetry", timedelta(hours=1)),
    # Bookings awaiting approval whose start came without a decision: cancelled, the member told.
    "expire-pending-bookings": _periodic("reservations.tasks.expire_pending_bookings", timedelta(minutes=1)),
}

# --- Time -------------------------------------------------------------------------------
# Stored in UTC; shown in TIME_ZONE unless a member chooses another.
USE_TZ = True
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
LANGUAGE_CODE = "en-us"
# 24-hour times with the zone's name wherever Django formats a moment (the admin): labres/formats/en.
FORMAT_MODULE_PATH = ["labres.formats"]
USE_I18N = False

# --- Bookings ---------------------------------------------------------------------------
# The longest a single booking may last, written as a duration (30m, 2h, 1d, 14d).
BOOKING_MAX_LENGTH = env.str("BOOKING_MAX_LENGTH", default="14d")
# How far ahead any booking may start (or a series repeat), for everyone, whatever fair use allows.
BOOKING_MAX_AHEAD = env.str("BOOKING_MAX_AHEAD", default="365d")
# How far in the past a booking may start, so that "now" typed a moment ago still works.
BOOKING_PAST_GRACE = env.str("BOOKING_PAST_GRACE", default="5m")
# Waitlist ("tell me when"): how long an entry waits at most, how long an offer holds, and how
# many offers a member may let run out before their entry lapses.
WAITLIST_MAX_WAIT = env.str("WAITLIST_MAX_WAIT", default="7d")
WAITLIST_OFFER_MINUTES = env.int("WAITLIST_OFFER_MINUTES", default=10)
WAITLIST_MAX_IGNORED_OFFERS = env.int("WAITLIST_MAX_IGNORED_OFFERS", default=2)
# The most occurrences one recurring booking (series) may have; a longer rule is refused.
SERIES_MAX_OCCURRENCES = env.int("SERIES_MAX_OCCURRENCES", default=100)

# --- Auth -------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "now"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Client addresses and password guessing (reservations/signin.py) ----------------------
# Your reverse proxies (addresses or networks, e.g. 10.0.0.5,10.1.0.0/16): only X-Forwarded-For
# hops they added are believed; empty (the default) trusts no header, the peer address counts.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy.strip(), strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {_proxy!r} is not an address or a network; write e.g. 10.0.0.5 or 10.1.0.0/16."
        ) from None
# Every password check (web and admin sign-in, API token) goes through the limits; with an LDAP
# server (below), the directory's password check does.
AUTHENTICATION_BACKENDS = ["reservations.signin.LimitedModelBackend"]
# Failed sign-ins allowed per account (10x per address) within the window, then refused.
LOGIN_ATTEMPTS_LIMIT = env.int("LOGIN_ATTEMPTS_LIMIT", default=5)
LOGIN_ATTEMPTS_WINDOW = env.int("LOGIN_ATTEMPTS_WINDOW_SECONDS", default=15 * 60)
# Password reset e-mails allowed per e-mail address (10x per client address) within the window.
PASSWORD_RESET_LIMIT = env.int("PASSWORD_RESET_LIMIT", default=3)
PASSWORD_RESET_WINDOW = env.int("PASSWORD_RESET_WINDOW_SECONDS", default=60 * 60)

# --- Single sign-on (reservations/sso/; README "Single sign-on") ------------------------------
# Both are off until set. On each sign-in the directory decides the member's staff flag and primary group
# where these settings say how, and their unix user name where it gives a valid, free one.
# OpenID Connect (Keycloak, Authentik, Google, Entra ID, GitLab): the issuer's address, whose
# /.well-known/openid-configuration is read at sign-in; the client this portal is at the provider.
OIDC_ISSUER = env.str("OIDC_ISSUER", default="").rstrip("/")
OIDC_RP_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
# The button reads "Sign in with OIDC_NAME"; OIDC_ONLY=1 shows no password form on the sign-in page.
OIDC_NAME = env.str("OIDC_NAME", default="single sign-on")
OIDC_ONLY = env.bool("OIDC_ONLY", default=False)
OIDC_RP_SCOPES = env.str("OIDC_SCOPES", default="openid email profile")
OIDC_RP_SIGN_ALGO = env.str("OIDC_SIGN_ALGO", default="RS256")  # how the provider signs ID tokens
# Claims: the new member's user name (else their e-mail), names, unix user name (empty: none).
OIDC_USERNAME_CLAIM = env.str("OIDC_USERNAME_CLAIM", default="preferred_username")
OIDC_FIRST_NAME_CLAIM = env.str("OIDC_FIRST_NAME_CLAIM", default="given_name")
OIDC_LAST_NAME_CLAIM = env.str("OIDC_LAST_NAME_CLAIM", default="family_name")
OIDC_UNIX_USERNAME_CLAIM = env.str("OIDC_UNIX_USERNAME_CLAIM", default="preferred_username")
# Staff when claim OIDC_STAFF_CLAIM is (or lists) OIDC_STAFF_VALUE (or, without a value, is true); unset: staff is set by hand.
OIDC_STAFF_CLAIM = env.str("OIDC_STAFF_CLAIM", default="")
OIDC_STAFF_VALUE = env.str("OIDC_STAFF_VALUE", default="")
# The claim listing the member's groups, picking their primary group: a MemberGroup of the same name, or
# through OIDC_GROUP_MAP (idp-group=Member group,..., the first that applies wins); unset: set by hand.
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="")
OIDC_GROUP_MAP = env.dict("OIDC_GROUP_MAP", default={})
# Seconds a call to the provider may take; a CA file for a provider with a private CA.
OIDC_TIMEOUT = env.int("OIDC_TIMEOUT", default=10)
OIDC_VERIFY_SSL = env.str("OIDC_CA_FILE", default="") or True
# mozilla-django-oidc: authorization code flow with PKCE; the ID token is kept to end the provider's session.
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc-callback"
LOGIN_REDIRECT_URL_FAILURE = "login"
if OIDC_ISSUER:
    AUTHENTICATION_BACKENDS.append("reservations.sso.oidc.OIDCBackend")

# LDAP / Active Directory (django-auth-ldap): the server (ldap://host or ldaps://host:636), the account the
# portal searches with, where members are and the filter that finds one (%(user)s: the name typed).
LDAP_SERVER_URI = env.str("LDAP_SERVER_URI", default="")
LDAP_BIND_DN = env.str("LDAP_BIND_DN", default="")
LDAP_BIND_PASSWORD = env.str("LDAP_BIND_PASSWORD", default="")
LDAP_USER_SEARCH_BASE = env.str("LDAP_USER_SEARCH_BASE", default="")
LDAP_USER_FILTER = env.str("LDAP_USER_FILTER", default="(uid=%(user)s)")
# Groups: where they are, which, and their kind (groupOfNames, nestedGroupOfNames, groupOfUniqueNames,
# posixGroup, activeDirectory); unset: no groups, staff flag and primary group are set by hand.
LDAP_GROUP_SEARCH_BASE = env.str("LDAP_GROUP_SEARCH_BASE", default="")
LDAP_GROUP_FILTER = env.str("LDAP_GROUP_FILTER", default="(objectClass=groupOfNames)")
LDAP_GROUP_TYPE = env.str("LDAP_GROUP_TYPE", default="groupOfNames")
# Members of this group (its name or DN) are staff; the primary group as for OIDC (LDAP_GROUP_MAP).
LDAP_STAFF_GROUP = env.str("LDAP_STAFF_GROUP", default="")
LDAP_GROUP_MAP = env.dict("LDAP_GROUP_MAP", default={})
# TLS: StartTLS on ldap:// (ldaps:// needs nothing), and the CA file that signed the server's certificate.
LDAP_START_TLS = env.bool("LDAP_START_TLS", default=False)
LDAP_CA_FILE = env.str("LDAP_CA_FILE", default="")
# Attributes: unix user name (empty: uid, else sAMAccountName), names and e-mail.
LDAP_UNIX_USERNAME_ATTR = env.str("LDAP_UNIX_USERNAME_ATTR", default="")
LDAP_FIRST_NAME_ATTR = env.str("LDAP_FIRST_NAME_ATTR", default="givenName")
LDAP_LAST_NAME_ATTR = env.str("LDAP_LAST_NAME_ATTR", default="sn")
LDAP_EMAIL_ATTR = env.str("LDAP_EMAIL_ATTR", default="mail")
LDAP_TIMEOUT = env.int("LDAP_TIMEOUT", default=10)  # seconds to connect, and for each answer
if LDAP_SERVER_URI:
    if LDAP_GROUP_TYPE not in ("groupOfNames", "nestedGroupOfNames", "groupOfUniqueNames", "posixGroup", "activeDirectory"):
        raise ImproperlyConfigured(f"LDAP_GROUP_TYPE: {LDAP_GROUP_TYPE!r} is none of groupOfNames, nestedGroupOfNames, "
                                   "groupOfUniqueNames, posixGroup, activeDirectory.")
    if importlib.util.find_spec("django_auth_ldap") is None or importlib.util.find_spec("ldap") is None:
        raise ImproperlyConfigured("LDAP_SERVER_URI is set, but django-auth-ldap is not installed: pip install 'labres[ldap]' "
                                   "(python-ldap builds from source: apt-get install build-essential libldap2-dev libsasl2-dev first).")
    AUTHENTICATION_BACKENDS[0] = "reservations.sso.ldap.LimitedLDAPBackend"

# --- Requests ----------------------------------------------------------------------------
# The largest request body read (forms, Slack, API JSON), in bytes; a larger one is refused (400, API: 413).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("REQUEST_MAX_BYTES", default=1024 * 1024)
# The longest path and query the API reads, in characters; a longer one is refused (414, in the API's
# error shape). Keep it under gunicorn's request-line limit (labres/gunicorn_config.py: 8190).
API_MAX_URI_LENGTH = env.int("API_MAX_URI_LENGTH", default=4096)

# --- API ---------------------------------------------------------------------------------
# Requests a minute (or /second, /hour, /day) from one anonymous address; empty: no limit.
API_THROTTLE_ANON = env.str("API_THROTTLE_ANON", default="30/minute")
# Requests a minute from one member, whichever token or session; empty: no limit.
API_THROTTLE_USER = env.str("API_THROTTLE_USER", default="1200/minute")
# Token requests (user name and password) a minute from one address; empty: no limit.
API_THROTTLE_TOKEN = env.str("API_THROTTLE_TOKEN", default="10/minute")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated request is then told 401 with WWW-Authenticate: Token.
        "reservations.api.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["reservations.api.throttles.AnonThrottle", "reservations.api.throttles.UserThrottle"],
    "DEFAULT_PAGINATION_CLASS": "reservations.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_PARSER_CLASSES": ["reservations.api.parsers.JSONParser"],  # bounded by size and depth
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_SCHEMA_CLASS": "reservations.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "reservations.api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "labres API",
    "DESCRIPTION": "Book GPUs, whole servers and rooms; see who holds what. Times without an offset are read in "
    "your time zone; answers give UTC. Errors: {\"error\": {\"code\", \"message\", \"fields\"?, \"conflicts\"?}}.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "reservations.api.schema.state_rules_between_fields"],
    "ENUM_NAME_OVERRIDES": {
        "BookingSourceEnum": "reservations.models.Booking.Source",
        "ClientSourceEnum": "reservations.api.serializers.CLIENT_SOURCES",
        "WaitlistStateEnum": "reservations.models.WaitlistEntry.State",  # in the entry and in the answer to joining
        "ErrorCodeEnum": "reservations.api.errors.CODES",
        "RefusalCodeEnum": "reservations.api.serializers.REFUSAL_CODES",
    },
    # Swagger UI and Redoc from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]  # our CSS and vendored front-end files (static/vendor)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Manifest storage would need collectstatic before every test run; names stay plain.
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
    },
}

# --- Security (behind a TLS proxy in production) ------------------------------------------
# BEHIND_TLS_PROXY=1: a proxy terminates TLS and sets X-Forwarded-Proto (https); then cookies are
# Secure, plain HTTP is redirected to HTTPS, and browsers are told to keep to HTTPS (HSTS).
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# Session and CSRF cookies only over HTTPS: behind the proxy, or when HTTPS origins are trusted.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=BEHIND_TLS_PROXY or (not DEBUG and bool(CSRF_TRUSTED_ORIGINS)))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Redirect plain HTTP to HTTPS; not the probes, which call a web process directly inside the network.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=BEHIND_TLS_PROXY)
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^metrics$"]
# HSTS: how long browsers keep to HTTPS (seconds; 0: no header). includeSubDomains and preload bind
# every host under the name (preload for good, once listed): a lab turns them on knowingly, so
# Django's reminders that they are off (W005, W021) are silenced.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if BEHIND_TLS_PROXY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

# --- Logging ----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Secret addresses (calendar feeds, Slack link confirmations) are logged as <secret>.
    "filters": {"redact_secrets": {"()": "labres.logs.RedactSecrets"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]}},
    "loggers": {
        "django.request": {"filters": ["redact_secrets"]},
        # A line per booking change (labres.logs), also from a worker or beat run at --loglevel WARNING.
        "labres.bookings": {"level": "INFO"},
        # A line per request; LOG_REQUESTS=0 (the demo) keeps only the failed ones.
        "django.server": {
            "handlers": ["console"], "filters": ["redact_secrets"], "propagate": False,
            "level": "INFO" if env.bool("LOG_REQUESTS", default=True) else "WARNING",
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

"""Settings for CINC Portal, read from the environment through django-environ.

Every setting has a development default so that a fresh clone runs with no
external service: SQLite under ``var/`` and a filesystem Celery broker. With
``DEBUG=False`` the portal refuses to start unless ``SECRET_KEY``,
``ALLOWED_HOSTS`` and ``TOKEN_ENCRYPTION_KEY`` are given. A secret may also be
given as ``<NAME>_FILE``: the path of a file holding it (Docker secrets).
"""

import base64
import hashlib
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))

VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _secret(name, default=""):
    """A secret from ``NAME``, or from the file named by ``NAME_FILE``."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


DEBUG = env.bool("DEBUG", default=True)

_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = _secret("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
_token_key = _secret("TOKEN_ENCRYPTION_KEY", default="")

if not DEBUG:
    missing = [
        name
        for name, value in (
            ("SECRET_KEY", SECRET_KEY),
            ("ALLOWED_HOSTS", ALLOWED_HOSTS),
            ("TOKEN_ENCRYPTION_KEY", _token_key),
        )
        if not value
    ]
    if missing:
        raise ImproperlyConfigured(
            "DEBUG is False, so these settings are required: " + ", ".join(missing)
        )

if not SECRET_KEY:
    SECRET_KEY = _DEV_SECRET_KEY
if not ALLOWED_HOSTS:
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
if not _token_key:
    # Development only: a Fernet key derived from the (development) secret
    # key, so a fresh clone runs without configuration.
    _token_key = base64.urlsafe_b64encode(
        hashlib.sha256(("tokens:" + SECRET_KEY).encode()).digest()
    ).decode()

# The first key encrypts; every key decrypts (rotation: put the new key in
# TOKEN_ENCRYPTION_KEY, the old one in TOKEN_ENCRYPTION_PREVIOUS_KEYS, then run
# `manage.py rotate_token_key`).
TOKEN_ENCRYPTION_KEYS = [_token_key] + [
    key for key in env.list("TOKEN_ENCRYPTION_PREVIOUS_KEYS", default=[]) if key
]

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_filters",
    "django_htmx",
    "axes",
    "accounts",
    "leads",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cinc_portal.urls"

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
                "accounts.context_processors.connections",
            ],
        },
    },
]

WSGI_APPLICATION = "cinc_portal.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take SQLite's write lock at BEGIN, so
    # `transaction.atomic()` serialises writers across processes (SQLite
    # ignores SELECT ... FOR UPDATE). WAL lets readers run beside a writer.
    # A sync inserts each new lead into a dozen indexes at random places: a
    # 16 MiB page cache (SQLite's default is 2 MiB) keeps their pages in
    # memory, and checkpointing every 10,000 pages instead of 1,000 copies
    # an index page rewritten by many commits into the database file once.
    # Replaying a first sync's inserts of 100,000 leads: 51 -> 36 us a lead
    # (a 32 MiB cache: 34 us, for twice the memory). The write-ahead log is
    # cut back to 64 MiB after a checkpoint. While a sync walks its pages a
    # helper thread checkpoints too (leads.sync.BackgroundCheckpoints).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                "PRAGMA busy_timeout=30000; PRAGMA cache_size=-16384; "
                "PRAGMA wal_autocheckpoint=10000; "
                "PRAGMA journal_size_limit=67108864;"
            ),
        }
    )
    # A file, not SQLite's shared in-memory database, so that tests with
    # threads or a Celery worker lock like production does.
    # One file per test process, so parallel runs never share one.
    DATABASES["default"]["TEST"] = {
        "NAME": str(VAR_DIR / "test" / f"db-{os.getpid()}.sqlite3")
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", 60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # Give up on an unreachable server after 2 s (libpq's minimum) instead of
    # hanging a request or /healthz; `?connect_timeout=N` in DATABASE_URL wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "leads:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The image collects static files at build time; STATIC_ROOT moves them (tests).
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default=(
        "django.core.mail.backends.console.EmailBackend"
        if DEBUG
        else "django.core.mail.backends.smtp.EmailBackend"
    ),
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="cinc-portal@localhost")

# Sessions and cookies. SameSite=Lax (not Strict) so that the session cookie
# comes back when CINC redirects the browser to the OAuth callback.
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
        "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True
    )
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


# Sign-in throttling (django-axes): a username/IP pair is locked out for a
# while after repeated failures.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_VERBOSE = False

# Celery. The embedded default is kombu's filesystem transport under var/, so
# a laptop needs no Redis; CELERY_BROKER_URL or REDIS_URL switches to Redis.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_QUEUE_DIR = VAR_DIR / "celery"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"

# CINC. The three URLs default to CINC's current production endpoints (see
# ../shared/cinc-api/NOTES.md, note 2); `make run` points them at the sandbox.
CINC_CLIENT_ID = env.str("CINC_CLIENT_ID", default="")
CINC_CLIENT_SECRET = _secret("CINC_CLIENT_SECRET", default="")
CINC_AUTHORIZE_URL = env.str(
    "CINC_AUTHORIZE_URL", default="https://authv2.cincapi.com/integrator/authorize"
)
CINC_TOKEN_URL = env.str(
    "CINC_TOKEN_URL", default="https://authv2.cincapi.com/integrator/token"
)
CINC_API_URL = env.str("CINC_API_URL", default="https://public.cincapi.com/v2/site")
CINC_REDIRECT_URI = env.str(
    "CINC_REDIRECT_URI", default="http://127.0.0.1:8000/cinc/callback/"
)
CINC_SCOPES = env.str("CINC_SCOPES", default="api:read api:create").split()
CINC_SYNC_INTERVAL = env.int("CINC_SYNC_INTERVAL", default=15 * 60)
# How the access token is sent: "authorization" (Authorization: Bearer, the
# standard) or "bearer" (the documentation's literal `Bearer:` header).
CINC_TOKEN_HEADER = env.str("CINC_TOKEN_HEADER", default="authorization")
# Mailing-address zip key sent on lead creation: postal_or_zip or postal_code.
CINC_ZIP_KEY = env.str("CINC_ZIP_KEY", default="postal_or_zip")
CINC_USE_PKCE = env.bool("CINC_USE_PKCE", default=False)


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# Content security policy: everything is served from our own origin (the
# front-end assets are vendored under static/).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        # The Connect and Reconnect forms redirect to CINC's consent page.
        "form-action": [
            "'self'",
            _origin(CINC_AUTHORIZE_URL),
            *env.list("CSP_FORM_ACTION", default=[]),
        ],
    }
}
CINC_TIMEOUT = env.float("CINC_TIMEOUT", default=20.0)
CINC_CONNECT_TIMEOUT = env.float("CINC_CONNECT_TIMEOUT", default=5.0)
# The longest a worker sleeps in place for the rate limit; longer waits
# reschedule the Celery task with a countdown.
CINC_MAX_INLINE_WAIT = env.float("CINC_MAX_INLINE_WAIT", default=10.0)
CINC_RATELIMIT_DIR = VAR_DIR / "ratelimit"
# CINC's documented budget: 15 requests per 20 seconds per endpoint. The
# limit adapts to what CINC announces in its headers; the window does not
# (CINC does not announce it), so a sandbox with a shorter window says so here.
CINC_RATE_LIMIT = env.int("CINC_RATE_LIMIT", default=15)
CINC_RATE_WINDOW = env.float("CINC_RATE_WINDOW", default=20.0)
# A running sync with no sign of life for this long is closed as failed.
CINC_SYNC_STALE_AFTER = env.int("CINC_SYNC_STALE_AFTER", default=600)
# A sync fetches the next page in a second thread while it writes the
# current one; False fetches and writes in turn.
CINC_SYNC_PREFETCH = env.bool("CINC_SYNC_PREFETCH", default=True)
# Finished sync runs older than this many days are deleted by the beat (the
# newest full sync of each connection is kept).
CINC_SYNC_RUNS_KEPT_DAYS = env.int("CINC_SYNC_RUNS_KEPT_DAYS", default=30)
OAUTH_STATE_TTL = env.int("OAUTH_STATE_TTL", default=600)

# Celery beat (after the CINC settings, whose interval it uses): queue a sync
# of every active connection every CINC_SYNC_INTERVAL seconds; the same task
# closes runs that stopped without finishing.
CELERY_BEAT_SCHEDULE = {
    "sync-all-connections": {
        "task": "leads.tasks.sync_all_connections_task",
        "schedule": timedelta(seconds=CINC_SYNC_INTERVAL),
        "options": {"expires": CINC_SYNC_INTERVAL},
    },
}

# Logging: one line per event on stdout. LOG_FORMAT=json (the default when
# DEBUG is False) writes one JSON object per line, with the fields code passes
# in `extra` (connection_id, sync_run_id); text is for a terminal. Every line
# goes through the one handler, which masks token-looking values
# (cinc_portal/logging.py). Django's, runserver's and gunicorn's loggers lose
# their own handlers and propagate to it.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "cinc_portal.logging.RedactSecretsFilter"}},
    "formatters": {
        "text": {
            "()": "cinc_portal.logging.TextFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "cinc_portal.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": [], "propagate": True, "level": "INFO"},
        "django.server": {"handlers": [], "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "gunicorn.error": {"handlers": [], "propagate": True},
        "gunicorn.access": {"handlers": [], "propagate": True},
        "urllib3": {"level": "WARNING"},
    },
}
# Celery workers keep the handler above instead of installing their own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

"""cohortsync settings: one module, driven by environment variables (see .env.example).

Development (DEBUG=true) generates its secrets once into var/dev-secrets.env; production refuses to
start without them. `make run` leaves var/dev.env (DEBUG=true) behind, so that the manage.py
commands typed later in the same checkout run in development mode too.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _load_dotenv(path: Path) -> None:
    """Fill os.environ from a KEY=VALUE file without overriding what the environment says."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        os.environ.setdefault(key.strip(), value.strip().strip("'\""))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def _dev_secrets(path: Path) -> dict[str, str]:
    """Secrets for development, generated on first use and kept in a git-ignored file."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        content = (
            "# Generated for development by cohortsync/settings.py. Never use in production.\n"
            f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
            f"COHORTSYNC_ENCRYPTION_KEYS={Fernet.generate_key().decode()}\n"
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    return values


_load_dotenv(BASE_DIR / ".env")
VAR_DIR = Path(os.environ.get("COHORTSYNC_VAR_DIR", BASE_DIR / "var"))
# Written by `make run` (seed_demo): it marks this checkout as a development one, so that
# `.venv/bin/python manage.py createuser ...` works without typing DEBUG=true in front. The
# environment and .env still win: production sets DEBUG=false (and never runs `make run`).
DEV_ENV_FILE = VAR_DIR / "dev.env"
_load_dotenv(DEV_ENV_FILE)

DEBUG = env_bool("DEBUG", default=False)

if DEBUG:
    _generated = _dev_secrets(VAR_DIR / "dev-secrets.env")
    for _name in ("SECRET_KEY", "COHORTSYNC_ENCRYPTION_KEYS"):
        os.environ.setdefault(_name, _generated[_name])

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set it in the environment (see .env.example), "
        "or set DEBUG=true for development, where it is generated (`make run` does, and "
        f"leaves {DEV_ENV_FILE} behind so that later commands do too)."
    )
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

# Fernet keys for credentials at rest: the first encrypts, every one decrypts (rotation).
COHORTSYNC_ENCRYPTION_KEYS = env_list("COHORTSYNC_ENCRYPTION_KEYS")
if not COHORTSYNC_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "COHORTSYNC_ENCRYPTION_KEYS is not set. Generate a key with `python -c "
        '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
    )

# Lets a connection point at http://127.0.0.1:... (the partner simulator). Off unless set.
COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = env_bool("COHORTSYNC_ALLOW_INSECURE_ENDPOINTS", default=False)
# Host names or networks (CIDR) that outbound calls may reach although they are private, e.g. a
# partner proxy on the private network. The egress policy itself: core/egress.py.
COHORTSYNC_EGRESS_ALLOW = env_list("COHORTSYNC_EGRESS_ALLOW")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list this server's host names when DEBUG=false.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# How many proxies in front of cohortsync append to X-Forwarded-For (0: none, REMOTE_ADDR is the
# client). Login throttling, the audit log and the import log read the client's address through
# them (core.audit.client_ip); behind a proxy, 0 would make every client one address.
COHORTSYNC_TRUSTED_PROXIES = int(env_str("COHORTSYNC_TRUSTED_PROXIES", "0"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_rq",
    # Login throttling (see "Login throttling" below) and the Content-Security-Policy header.
    "axes",
    "csp",
    "core",
    "cohortsync",
    "connections",
    "cohorts",
    "syncs",
    "alerts",
    # Listed for its templates and static Swagger UI (no CDN); keep "api" after it: the role
    # groups are synced when the last app has migrated, and ninja has no models.
    "ninja",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a refused login into the lockout page (core.login_throttle).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "cohortsync.urls"
WSGI_APPLICATION = "cohortsync.wsgi.application"

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
                "core.roles.role_context",
            ],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _default_db))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web, worker and cron share the file: WAL lets readers run beside one writer, and
    # IMMEDIATE transactions wait for the lock instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = int(env_str("CONN_MAX_AGE", "60"))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The embedded Valkey started by `make run` listens on this socket when REDIS_URL is not set.
EMBEDDED_REDIS_SOCKET = VAR_DIR / "run" / "valkey.sock"
REDIS_URL = env_str("REDIS_URL") or f"unix://{EMBEDDED_REDIS_SOCKET}?db=0"
# Two queues, so a six-hour sync run never delays an alert: `runs` for sync runs and CSV
# imports, `default` for short jobs (alerts, credential checks, the dispatcher, the reapers).
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600, "DEFAULT_RESULT_TTL": 3600},
    "runs": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600, "DEFAULT_RESULT_TTL": 3600},
}
# cohortsync.worker.Worker: a stop reaches a running sync, which re-queues itself at a checkpoint.
RQ = {"COMMIT_MODE": "on_db_commit", "WORKER_CLASS": "cohortsync.worker.Worker"}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes; core/login_throttle.py). After COHORTSYNC_LOGIN_FAILURE_LIMIT
# failed logins for one account, or from one address, each within
# COHORTSYNC_LOGIN_LOCKOUT_MINUTES of the one before, that account or address is refused, even
# with the right password, until COHORTSYNC_LOGIN_LOCKOUT_MINUTES after the last failure (an
# attempt while locked counts as one). Admins unlock with `manage.py unlock_login` or on
# /accounts/lockouts/. The refusal is a 429 with Retry-After; each lock is in the audit log.
COHORTSYNC_LOGIN_FAILURE_LIMIT = int(env_str("COHORTSYNC_LOGIN_FAILURE_LIMIT", "10"))
COHORTSYNC_LOGIN_LOCKOUT_MINUTES = int(env_str("COHORTSYNC_LOGIN_LOCKOUT_MINUTES", "15"))
if COHORTSYNC_LOGIN_FAILURE_LIMIT < 1 or COHORTSYNC_LOGIN_LOCKOUT_MINUTES < 1:
    raise ImproperlyConfigured(
        "COHORTSYNC_LOGIN_FAILURE_LIMIT and COHORTSYNC_LOGIN_LOCKOUT_MINUTES must be at least 1."
    )
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out account or address before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = COHORTSYNC_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=COHORTSYNC_LOGIN_LOCKOUT_MINUTES)
# Each on its own: one account from anywhere, and one address whatever account it tries.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_CALLABLE = "core.login_throttle.attempted_username"
AXES_CLIENT_IP_CALLABLE = "core.audit.client_ip"
AXES_LOCKOUT_CALLABLE = "core.login_throttle.lockout_response"
# A successful login does not wipe the address's failures (that would let one valid account
# reset the count between guesses at another), and is not logged by axes (an AccessLog row per
# login, kept for ever).
AXES_RESET_ON_SUCCESS = False
AXES_DISABLE_ACCESS_LOG = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request otherwise
# Uploaded CSV files wait here for the worker. With workers on several machines, point the
# default storage at shared storage (a network volume, or an S3 backend).
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# The largest CSV a marketer may upload, in bytes (1 GiB by default).
CSV_UPLOAD_MAX_BYTES = int(env_str("CSV_UPLOAD_MAX_BYTES", str(1024**3)))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Production hardening; `manage.py check --deploy` is clean with DEBUG=false.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = 0 if DEBUG else int(env_str("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# Preloading commits the whole domain to https for browsers; only its owner can choose that.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts, styles and everything else from this server only.
# The pages carry no inline script, style element or style attribute (htmx's own indicator style
# is turned off in base.html); tests/test_security_headers.py checks the templates stay so.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: for the icons inlined in the stylesheets (the API docs' Swagger UI).
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Mail goes to the console until an SMTP server is set (EMAIL_HOST) or another backend chosen.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = int(env_str("EMAIL_PORT", "587"))
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_SSL:
    EMAIL_USE_TLS = False  # implicit TLS (port 465) and STARTTLS exclude each other
# A mail server that does not answer must not hold an alert worker for ever.
EMAIL_TIMEOUT = int(env_str("EMAIL_TIMEOUT", "10"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "cohortsync@localhost")
# This server's address as people reach it, for the links in alerts. runstack sets it to its own
# port when unset; in production `check --deploy` warns while it points at this machine.
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

# How long a rotated data-import key keeps working, unless the admin picks another window.
IMPORT_KEY_ROTATION_GRACE_HOURS = int(env_str("IMPORT_KEY_ROTATION_GRACE_HOURS", "24"))
# Requests per hour one data-import key may make to the inbound API (Braze allows 250,000).
INBOUND_RATE_LIMIT_PER_HOUR = int(env_str("INBOUND_RATE_LIMIT_PER_HOUR", "250000"))
# Seconds a run may spend in all waiting for a partner's rate limit to reset (its 429s, and
# resets it announced) before it hands itself back to the queue, to resume from its last
# checkpoint a few minutes later instead of failing. Waits do not spend a batch's attempts.
COHORTSYNC_RUN_RATE_WAIT_SECONDS = int(env_str("COHORTSYNC_RUN_RATE_WAIT_SECONDS", "900"))
# A run checkpoints the batches the partner answered together, once they hold this many members
# or the oldest has waited this many seconds: fewer commits, and a killed worker re-sends at
# most these members plus those in flight (docs/architecture.md, "Sync run").
COHORTSYNC_CHECKPOINT_MEMBERS = int(env_str("COHORTSYNC_CHECKPOINT_MEMBERS", "2000"))
COHORTSYNC_CHECKPOINT_SECONDS = float(env_str("COHORTSYNC_CHECKPOINT_SECONDS", "0.25"))
# The home page lists a recurring sync whose cohort has not changed for this many days.
COHORTSYNC_STALE_COHORT_DAYS = int(env_str("COHORTSYNC_STALE_COHORT_DAYS", "7"))
# A sync's verification (syncs/verification.py) raises an alert when less than this share (%)
# of the sampled members a run sent carry the membership at the partner.
COHORTSYNC_VERIFY_ALERT_PCT = float(env_str("COHORTSYNC_VERIFY_ALERT_PCT", "95"))
if not 0 <= COHORTSYNC_VERIFY_ALERT_PCT <= 100:
    raise ImproperlyConfigured("COHORTSYNC_VERIFY_ALERT_PCT must be from 0 to 100.")
# Amplitude's monthly download quota per project (500 on Growth and Enterprise plans,
# docs/partners/amplitude.md §5): a pull cadence whose projected downloads exceed it is refused.
COHORTSYNC_AMPLITUDE_MONTHLY_DOWNLOADS = int(
    env_str("COHORTSYNC_AMPLITUDE_MONTHLY_DOWNLOADS", "500")
)
# Days each log that grows with traffic is kept; a daily job deletes older rows (0: keep for
# ever). What each covers: cohortsync/retention.py.
COHORTSYNC_RETENTION_DAYS_IMPORT_REQUESTS = int(
    env_str("COHORTSYNC_RETENTION_DAYS_IMPORT_REQUESTS", "90")
)
COHORTSYNC_RETENTION_DAYS_REFUSED_COUNTS = int(
    env_str("COHORTSYNC_RETENTION_DAYS_REFUSED_COUNTS", "90")
)
COHORTSYNC_RETENTION_DAYS_RUN_EVENTS = int(env_str("COHORTSYNC_RETENTION_DAYS_RUN_EVENTS", "90"))
# A run's requests and answers hold a sample of members' identifiers: kept for debugging only.
COHORTSYNC_RETENTION_DAYS_RUN_EXCHANGES = int(
    env_str("COHORTSYNC_RETENTION_DAYS_RUN_EXCHANGES", "30")
)
COHORTSYNC_RETENTION_DAYS_AMPLITUDE_BATCHES = int(
    env_str("COHORTSYNC_RETENTION_DAYS_AMPLITUDE_BATCHES", "90")
)
COHORTSYNC_RETENTION_DAYS_ALERT_DELIVERIES = int(
    env_str("COHORTSYNC_RETENTION_DAYS_ALERT_DELIVERIES", "90")
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # A refused page (403) is logged as its one line, "Forbidden (Permission denied): /path".
    "filters": {"forbidden_one_line": {"()": "core.log_filters.ForbiddenWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["forbidden_one_line"]},
    },
}

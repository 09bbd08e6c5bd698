"""Django settings: every knob comes from the environment (django-environ).

With nothing set, the project runs zero-config: SQLite, a filesystem Celery broker, local-memory
cache. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and Redis. `.env.example` lists every
variable; a `.env` file is read only when `DJANGO_READ_DOT_ENV=1`.

About 400 lines, on purpose: every setting of the project in one module, grouped by concern, so
that one place answers "what can I configure and what is its default".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from kasparro.core.catalogue import canonical_name, source_names
from kasparro.core.secret_key import local_secret_key, secret_key_problem

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if env.bool("DJANGO_READ_DOT_ENV", default=False):
    env.read_env(str(BASE_DIR / ".env"))

TESTING = "pytest" in sys.modules or env.bool("KASPARRO_TESTING", default=False)

# Where zero-config mode keeps its state (SQLite file, filesystem broker); never committed.
STATE_DIR = Path(env("KASPARRO_STATE_DIR", default=str(BASE_DIR / ".state")))

# Zero-config mode: no DATABASE_URL, so SQLite in STATE_DIR and no services needed.
ZERO_CONFIG = not env("DATABASE_URL", default="")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="")
if SECRET_KEY and not DEBUG:
    refused_key = secret_key_problem(SECRET_KEY)
    if refused_key:
        raise ImproperlyConfigured(
            f"SECRET_KEY is refused: {refused_key}. Set a long random value, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
if not SECRET_KEY:
    if TESTING or DEBUG:
        SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105
    elif ZERO_CONFIG:
        SECRET_KEY = local_secret_key(STATE_DIR / "secret_key")
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set (DATABASE_URL is, so this is a deployment)."
        )

# HTTPS, for deployments behind a TLS-terminating proxy (all off by default for local use).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes (the image's HEALTHCHECK, Prometheus) speak plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_prometheus",
    "django_celery_results",
    "django_htmx",
    "kasparro.core.apikeys",
    "crypto",
    "runs",
    "etl",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "kasparro.core.request_id.RequestIdMiddleware",
    "kasparro.core.metrics.ApiMetricsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "kasparro.core.db_router.ReplicaReadsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "kasparro.urls"
WSGI_APPLICATION = "kasparro.wsgi.application"

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
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{STATE_DIR / 'kasparro.sqlite3'}"),
}
# django-prometheus's wrappers of the same backends count queries, errors and connections.
DATABASES["default"]["ENGINE"] = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, worker and beat share one file: WAL lets readers run beside the writer, IMMEDIATE
    # transactions take the write lock up front instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    # A file, not memory, so subprocesses started by tests (CLI, worker) see the test database.
    # Named per process, so two test sessions on one machine never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(STATE_DIR / f"test-{os.getpid()}.sqlite3")}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)

# A read replica (PostgreSQL streaming replication, say): the public API's and the dashboard's
# reads go there; writes, the ETL, admin and authentication stay on the primary
# (kasparro.core.db_router). In tests the replica is a mirror of the test database.
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = {
        **env.db_url_config(DATABASE_REPLICA_URL),
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": dict(DATABASES["default"].get("OPTIONS", {})),
        "TEST": {"MIRROR": "default"},
    }
    DATABASE_ROUTERS = ["kasparro.core.db_router.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache, Celery ---------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="kasparro"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = STATE_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Longer than any task's time limit plus retry countdown, so a task is never redelivered
    # to a second worker while the first still holds it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 3600}
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=25 * 60)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The queue tasks go to and workers read unless told otherwise (separates deployments or
# test runs sharing one Redis).
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Auth, i18n, static -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING or ZERO_CONFIG
            else "kasparro.core.staticfiles.StaticStorage"
        )
    },
}
# Whitenoise also serves files straight from the apps: what was never collected still works.
WHITENOISE_USE_FINDERS = True
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "kasparro.core.staticfiles.PackageFileFinder",
]
# Static files that packages ship outside Django's static folders: path -> (package, file).
STATICFILES_PACKAGE_FILES = {
    "vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # 0: the client is the peer address and X-Forwarded-For is ignored; N: the N-th address
    # from the right of X-Forwarded-For (behind the compose nginx, 1).
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_AUTHENTICATION_CLASSES": ["kasparro.core.apikeys.authentication.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["kasparro.core.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "kasparro.core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Kasparro API",
    "DESCRIPTION": "Crypto market data, news and ETL run history. Errors share one JSON shape "
    "with the request id. Token endpoints take `Authorization: Token <key>` or `X-API-Key: <key>` "
    "(either; two headers naming different keys are a 401). A query parameter sent empty is a "
    "400 naming it: leave it out instead.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two "status" enums (a run's, /health's): named, rather than hashed apart.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "runs.models.Run.Status",
        "HealthStatusEnum": ["healthy", "degraded", "unhealthy"],
    },
    # The security schemes come from kasparro.core.apikeys.schema; the links from the views.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "kasparro.core.openapi.move_response_links",
        "kasparro.core.openapi.document_validators",
    ],
}

# Throttles, per client address and per API key (kasparro.core.throttle, in the cache's Redis
# when configured, in-process otherwise).
API_RATE_PER_ADDRESS = env("API_RATE_PER_ADDRESS", default="600/min")
API_RATE_PER_KEY = env("API_RATE_PER_KEY", default="3000/min")

# /metrics: open unless a token (sent as "Bearer <token>") or an address allow-list is set.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])

# --- Sources ----------------------------------------------------------------------------------
COINGECKO_BASE_URL = env("COINGECKO_BASE_URL", default="https://api.coingecko.com/api/v3")
COINGECKO_API_KEY = env("COINGECKO_API_KEY", default="")
COINGECKO_PAGES = env.int("COINGECKO_PAGES", default=1)
COINGECKO_PER_PAGE = env.int("COINGECKO_PER_PAGE", default=250)
COINGECKO_RATE_LIMIT = env.int("COINGECKO_RATE_LIMIT", default=30)  # requests per minute

RSS_FEED_URLS = env.list(
    "RSS_FEED_URLS",
    default=[
        "https://www.coindesk.com/arc/outboundfeeds/rss/",
        "https://cointelegraph.com/rss",
        "https://decrypt.co/feed",
    ],
)
RSS_RATE_LIMIT = env.int("RSS_RATE_LIMIT", default=60)  # requests per minute, per feed host

CSV_DROP_DIR = Path(env("CSV_DROP_DIR", default=str(BASE_DIR / "data" / "csv_drop")))
CSV_PAGE_ROWS = env.int("CSV_PAGE_ROWS", default=20_000)

# HTTP client (all sources)
ETL_HTTP_CONNECT_TIMEOUT = env.float("ETL_HTTP_CONNECT_TIMEOUT", default=5.0)
ETL_HTTP_READ_TIMEOUT = env.float("ETL_HTTP_READ_TIMEOUT", default=30.0)
ETL_HTTP_MAX_RETRIES = env.int("ETL_HTTP_MAX_RETRIES", default=4)
ETL_HTTP_BACKOFF_BASE = env.float("ETL_HTTP_BACKOFF_BASE", default=1.0)
ETL_HTTP_BACKOFF_CAP = env.float("ETL_HTTP_BACKOFF_CAP", default=60.0)

# Pipeline
# A live run's heartbeat renews its claim on the source every LEASE/6 s (at most 10 s); a
# dead run's claim expires LEASE after its last beat (on PostgreSQL an advisory lock frees it
# at once). See etl/services/leases.py.
ETL_LEASE_SECONDS = env.int("ETL_LEASE_SECONDS", default=45)
ETL_TASK_MAX_RETRIES = env.int("ETL_TASK_MAX_RETRIES", default=3)
ETL_TASK_RETRY_BASE = env.float("ETL_TASK_RETRY_BASE", default=60.0)  # seconds
ETL_TASK_RETRY_CAP = env.float("ETL_TASK_RETRY_CAP", default=15 * 60.0)  # < visibility timeout
ETL_SCHEDULE_MINUTES = env.int("ETL_SCHEDULE_MINUTES", default=60)
ETL_READ_AHEAD_PAGES = env.int("ETL_READ_AHEAD_PAGES", default=1)
ETL_FAULTS = env("ETL_FAULTS", default="")
ETL_FAULTS_ALLOWED = env.bool("ETL_FAULTS_ALLOWED", default=DEBUG or TESTING)
ETL_FUZZY_MIN_SCORE = env.int("ETL_FUZZY_MIN_SCORE", default=88)
# Raw pages are deleted this many days after a run last fetched them, unless a replay still
# needs them (etl/services/retention.py); 0 keeps them forever. Daily by beat and `etl prune`.
ETL_RAW_RETENTION_DAYS = env.int("ETL_RAW_RETENTION_DAYS", default=30)
# Runs are deleted this many days after they started; 0 (the default) keeps every run. What they
# counted stays in the run rollups (/metrics, /health); runs a replay or evidence still needs
# are kept (etl/services/run_retention.py). Pruned with the raw pages.
ETL_RUN_RETENTION_DAYS = env.int("ETL_RUN_RETENTION_DAYS", default=0)
# Schema drift policy per source (evolve | freeze | pause), e.g. "csv=freeze,rss=pause";
# editable in admin afterwards (Source policies).
# Sources by name or alias, any case; a source no catalogue line names, a policy that does not
# exist or a source given twice stops the process at start with the reason.
DRIFT_POLICIES = ("evolve", "freeze", "pause")


def _drift_policy(value: str, setting: str) -> str:
    policy = value.strip().lower()
    if policy not in DRIFT_POLICIES:
        raise ImproperlyConfigured(
            f"{setting}: {value!r} is no drift policy; one of {', '.join(DRIFT_POLICIES)}"
        )
    return policy


ETL_DRIFT_POLICY: dict[str, str] = {}
for _source, _policy in env.dict("ETL_DRIFT_POLICY", default={}).items():
    _name = canonical_name(_source)
    if _name is None:
        raise ImproperlyConfigured(
            f"ETL_DRIFT_POLICY names {_source.strip()!r}, which is no source; one of "
            + ", ".join(source_names())
        )
    if _name in ETL_DRIFT_POLICY:
        raise ImproperlyConfigured(f"ETL_DRIFT_POLICY gives {_name} twice")
    ETL_DRIFT_POLICY[_name] = _drift_policy(_policy, "ETL_DRIFT_POLICY")
ETL_DRIFT_POLICY_DEFAULT = _drift_policy(
    env("ETL_DRIFT_POLICY_DEFAULT", default="evolve"), "ETL_DRIFT_POLICY_DEFAULT"
)

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="console" if DEBUG else "json")  # json | console
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "kasparro.core.logging.ContextFilter"}},
    "formatters": {
        "json": {"()": "kasparro.core.logging.JsonFormatter"},
        "console": {"()": "kasparro.core.logging.ConsoleFormatter"},
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["default"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # A scanner's bad Host header is noise, not an error with a traceback.
        "django.security.DisallowedHost": {"level": "CRITICAL"},
        "urllib3": {"level": "WARNING"},
        # Celery installs its own handlers unless told not to (CELERY_WORKER_HIJACK_ROOT_LOGGER).
        "celery": {"level": LOG_LEVEL},
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Kasparro: one image for web (gunicorn), worker and beat (celery) and one-off commands.
#   docker build -t kasparro .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=... -e REDIS_URL=... -e SECRET_KEY=... kasparro
# docker-compose.yml wires it to PostgreSQL and Redis; see deploy/README.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a venv at /opt/venv with the pinned runtime dependencies ---------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build
COPY requirements.lock pyproject.toml ./
# requirements.lock is the full set CI tested, dev tools included (pytest, ruff, Faker...).
# The image installs only the runtime dependencies from pyproject.toml, each pinned by the lock
# (-c), so every installed version is exactly the one CI tested. Every dependency ships a
# wheel (psycopg[binary] included), so no compiler or system library is needed.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.runtime.txt \
    && pip install --no-cache-dir -r requirements.runtime.txt -c requirements.lock \
    && pip check \
    && pip uninstall --yes pip setuptools
# (pip and setuptools are not needed at run time: nothing in the venv imports them.)

# --- runtime: the venv, the app, a non-root user ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=kasparro.settings \
    KASPARRO_STATE_DIR=/var/lib/kasparro \
    PORT=8000

RUN groupadd --system --gid 10001 kasparro \
    && useradd --system --uid 10001 --gid kasparro --create-home --home-dir /home/kasparro \
        --shell /usr/sbin/nologin kasparro \
    && install -d -o kasparro -g kasparro -m 0750 /var/lib/kasparro

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Code stays owned by root: the app user can read it but not rewrite it.
COPY . .

# Static files are collected into the image (whitenoise serves them, hashed and compressed).
# Settings refuse to load without SECRET_KEY once DATABASE_URL is set: these throwaway values
# exist for this RUN line only and are not part of the image's environment. The state dir is
# redirected too, because importing settings without REDIS_URL creates the filesystem broker's
# folders there, and root-owned folders in /var/lib/kasparro would lock the app user out.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
        DATABASE_URL=sqlite:////tmp/build.sqlite3 \
        KASPARRO_STATE_DIR=/tmp/build-state \
        python manage.py collectstatic --noinput \
    && rm -rf /tmp/build.sqlite3 /tmp/build-state

USER kasparro:kasparro

EXPOSE 8000

# /health answers 200 when healthy or degraded and 503 when the database is unreachable;
# urllib raises on 503 and on connection errors, so either makes the check fail.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "kasparro.wsgi:application", "-c", "deploy/gunicorn.conf.py"]

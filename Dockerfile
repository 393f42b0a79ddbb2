# CINC Portal: one image for every process of the stack (docker-compose.yml):
# web (gunicorn, the default command), the Celery worker and beat, the
# one-shot migration and the optional CINC sandbox. See docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/app/var

WORKDIR /app

# The processes run as this unprivileged user. The code stays owned by root,
# so the only place they can write is var/ (Celery beat's schedule, the
# sandbox's database).
RUN groupadd --system --gid 10001 portal \
 && useradd --system --uid 10001 --gid portal --home-dir /app --no-create-home \
    --shell /usr/sbin/nologin portal

# Dependencies first, from the pinned list, so that code changes reuse this
# layer. Every pinned package ships a wheel: no compiler needed.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# Static files are collected into the image, hashed and compressed, for
# whitenoise. With DEBUG=False the settings refuse to load without these three
# variables; the values below exist only for this command and are not kept.
RUN DEBUG=False SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost \
    TOKEN_ENCRYPTION_KEY=collectstatic-only \
    python manage.py collectstatic --noinput \
 && mkdir -p var/sandbox \
 && chown -R portal:portal var

USER portal
EXPOSE 8000

# For web only; docker-compose.yml gives the other services their own check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "docker/healthcheck.py"]

CMD ["gunicorn", "-c", "docker/gunicorn.conf.py", "cinc_portal.wsgi"]

# The web service: daphne serving tripsage.asgi with production settings, as a user without
# privileges, behind the nginx service (deploy/nginx/), which alone sets X-Forwarded-*: the
# processes trust those headers from TRUSTED_PROXIES only (docs/deployment.md).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=tripsage.settings.production
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic needs settings but no secrets of value.
RUN DJANGO_SECRET_KEY=build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
    JWT_SIGNING_KEY=build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
    ALLOWED_HOSTS=build PUBLIC_URL=http://build DATABASE_URL=sqlite:///tmp/build.db \
    REDIS_URL=redis://build:6379/0 python manage.py collectstatic --noinput --verbosity 0
RUN useradd --system --uid 10001 --no-create-home --home-dir /app tripsage
USER tripsage
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "deploy.healthcheck", "8000"]
# A listen backlog of 2048, not Twisted's 50, for reconnect storms (deploy/cluster.py's
# LISTEN_BACKLOG; docs/deployment.md, "Sockets per process").
CMD ["daphne", "-e", "tcp:port=8000:interface=0.0.0.0:backlog=2048", "tripsage.asgi:application"]

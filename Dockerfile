# The web service: daphne serving tripsage.asgi with production settings.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=tripsage.settings.production
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic needs settings but no secrets of value.
RUN DJANGO_SECRET_KEY=build ALLOWED_HOSTS=build DATABASE_URL=sqlite:///tmp/build.db \
    REDIS_URL=redis://build:6379/0 python manage.py collectstatic --noinput --verbosity 0
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "tripsage.asgi:application"]

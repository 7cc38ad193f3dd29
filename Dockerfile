# integ-bot container image.
#
#   docker build -t integ-bot .
#   docker run -p 3000:3000 -v integ-data:/data -v "$PWD/catalog.yml:/config/catalog.yml:ro" \
#       -e SLACK_BOT_TOKEN -e SLACK_SIGNING_SECRET -e INTEG_WEBHOOK_TOKEN integ-bot
#
# Without Slack credentials the bot starts in local mode. Without a mounted catalog it uses
# the bundled example, copied to /config/catalog.yml below.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# graphviz draws the pictures for /integ diagram.
RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

COPY . .
RUN pip install . \
    && mkdir -p /data /config \
    && cp examples/catalog.yml /config/catalog.yml \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin integ \
    && chown integ:integ /data

ENV DATABASE_URL=sqlite:////data/integ.db \
    INTEG_CATALOG=/config/catalog.yml

# The SQLite database lives here; with PostgreSQL (DATABASE_URL=postgresql+psycopg://…)
# the volume stays empty.
VOLUME /data

USER 10001
EXPOSE 3000
# The SMTP listener, when INTEG_SMTP_PORT=2525 and INTEG_SMTP_HOST=0.0.0.0 (docs/mail.md).
EXPOSE 2525

# /healthz answers 200 when the database does. python:slim has no curl, so use Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4).status == 200 else 1)"]

CMD ["integ-bot", "serve", "--host", "0.0.0.0"]

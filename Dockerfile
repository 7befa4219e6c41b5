# The bot's image (docs/ARCHITECTURE.md, Deployment): slim Python, the package without its dev
# extras, a non-root user and a healthcheck on GET /health. Build from the repository root:
# docker build -t arbitrage .
# Run it with Redis through infra/docker-compose.yml (see infra/README.md).
FROM python:3.11-slim

# Extras of the package, e.g. --build-arg EXTRAS=postgres for a PostgreSQL ledger (storage.url).
ARG EXTRAS=""

# ARB_MODE is the mode when compose or `docker run -e` gives none: mock, never live.
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    ARB_MODE=mock

# A fixed uid, so that the host can own the bind-mounted logs/ and data/ (chown 10001:10001).
RUN groupadd --gid 10001 arb \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin arb

WORKDIR /app

# Built outside /app so that the installed package, not a source copy beside it, is what runs.
COPY pyproject.toml README.md /tmp/src/
COPY arbitrage /tmp/src/arbitrage
RUN pip install "/tmp/src${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /tmp/src

# The config stays root-owned (read-only to the bot); only logs/ and data/ are the bot's to write.
COPY config /app/config
RUN mkdir -p /app/logs /app/data \
    && chown arb:arb /app/logs /app/data

VOLUME ["/app/logs", "/app/data"]
EXPOSE 8080

USER arb

# urllib, not curl: the slim image has no curl. A 503 (watchdog ERROR/CRITICAL) raises, so exit 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

# SIGTERM starts the graceful shutdown (see docs/ARCHITECTURE.md, Shutdown); give it time: docker stop -t 30.
STOPSIGNAL SIGTERM
ENTRYPOINT ["arb"]
# No --mode here: a command-line --mode would override ARB_MODE, and the mode comes from the environment.
CMD ["run", "--config", "/app/config/docker.yml", "--log-dir", "/app/logs", "--data-dir", "/app/data"]

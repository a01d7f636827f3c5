# syntax=docker/dockerfile:1
# Multi-stage: build a wheel, install it into a slim runtime as a non-root user.
# The container runs the API (`mobility serve`) against an external PostgreSQL
# (DATABASE_URL); run one more container with `mobility ingest` for the pollers.
# See docs/deploy.md.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY ingest ./ingest
COPY kernel ./kernel
COPY frontend ./frontend
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 mobility
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER mobility
WORKDIR /home/mobility
ENV MOBILITY_HOST=0.0.0.0 \
    MOBILITY_PORT=8000 \
    MOBILITY_LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["mobility"]
CMD ["serve"]

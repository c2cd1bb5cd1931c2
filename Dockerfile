# luxflow worker image: the KCL MultiLangDaemon (JVM) leasing shards, one luxflow shard
# processor (Python) per leased shard.
#
#   docker build -t luxflow .
#   docker run --rm -e LUXFLOW_STREAM=... luxflow            # default: KCL worker
#
# Stop behaviour: `docker stop` / ECS send SIGTERM to PID 1 (`luxflow worker --runner kcl`),
# which passes it to the JVM; the daemon's shutdown hook asks every shard processor to flush
# and checkpoint for up to shutdownGraceMillis (45 s), then exits. Give the container more
# than that before SIGKILL: ECS `stopTimeout` 60 (deploy/ecs/README.md).

# --- stage 1: the KCL jars from Maven Central, exactly as `./dev jars` fetches them ---------
FROM maven:3.9-eclipse-temurin-17 AS jars
WORKDIR /build
COPY deploy/kcl/pom.xml deploy/kcl/pom.xml
RUN mvn -q -B -f deploy/kcl/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=/build/.jars

# --- stage 2: luxflow into its own virtualenv -------------------------------------------------
FROM python:3.11-slim-bookworm AS python
WORKDIR /app
RUN python -m venv /app/.venv
# README.m[d]: copied when present (pyproject names it as the readme).
COPY pyproject.toml README.m[d] ./
# The runtime packages only: setuptools discovers the packages present, so the development
# tooling (sim/, emulators/, benchmarks/, tests/) is neither copied nor installed.
COPY app.py ./
COPY core core
COPY domain domain
COPY streams streams
COPY tables tables
COPY sinks sinks
COPY lighting lighting
COPY cli cli
COPY api api
RUN /app/.venv/bin/pip install --no-cache-dir .

# --- stage 3: slim runtime: Python + a JRE + the jars -----------------------------------------
FROM python:3.11-slim-bookworm
ENV JAVA_HOME=/opt/java/openjdk \
    PATH=/app/.venv/bin:/opt/java/openjdk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=eclipse-temurin:17-jre /opt/java/openjdk /opt/java/openjdk
COPY --from=python /app/.venv /app/.venv
COPY --from=jars /build/.jars /app/.jars
WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /app luxflow && mkdir -p /app/run \
    && chown luxflow /app/run
USER luxflow

# Healthy while the daemon's JVM runs; the daemon exits on fatal errors.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-m", "streams.kcl.health"]

STOPSIGNAL SIGTERM
CMD ["luxflow", "worker", "--runner", "kcl", "--jars", "/app/.jars"]

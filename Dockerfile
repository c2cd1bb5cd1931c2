# luxflow worker image: the KCL MultiLangDaemon (JVM) leasing shards, one luxflow shard
# processor (Python) per leased shard. How to build, the smoke test and measured figures:
# docs/image.md.
#
#   docker build -t luxflow .                                 # upstream base images
#   ./dev image                                               # podman, Debian-bootstrapped bases
#   docker run --rm -e LUXFLOW_STREAM=... luxflow             # default: KCL worker
#
# Stop behaviour: `docker stop` / ECS send SIGTERM to PID 1 (`luxflow worker --runner kcl`),
# which passes it to the JVM; the daemon's shutdown hook asks every shard processor to flush
# and checkpoint for up to shutdownGraceMillis (45 s), then exits. Give the container more
# than that before SIGKILL: ECS `stopTimeout` 60 (infra/lib/worker.ts).

# The base images, overridable (`--build-arg`); `./dev image` points them at local images
# bootstrapped from Debian bookworm with mmdebstrap. The Python image must provide `python3`
# with the venv module; the JRE image a Java 17 runtime in /opt/java/openjdk; the Maven image
# `mvn` with a JDK or JRE 17.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG JRE_IMAGE=eclipse-temurin:17-jre
ARG MAVEN_IMAGE=maven:3.9-eclipse-temurin-17

# --- stage 1: the KCL jars from Maven Central, exactly as `./dev jars` fetches them ---------
FROM ${MAVEN_IMAGE} AS jars
WORKDIR /build
COPY deploy/kcl/pom.xml deploy/kcl/pom.xml
RUN mvn -q -B -f deploy/kcl/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=/build/.jars

# --- stage 2: the Java runtime (COPY --from takes no build argument, a stage does) -----------
FROM ${JRE_IMAGE} AS jre

# --- stage 3: luxflow into its own virtualenv -------------------------------------------------
# tests/integration/test_packaging.py reads this stage's `COPY <src> <dst>` lines up to the
# pip install of luxflow itself: keep the runtime sources' COPY lines before that line.
FROM ${PYTHON_IMAGE} AS python
WORKDIR /app
RUN python3 -m venv /app/.venv
# Dependencies first (their layer is reused until the lock changes), pinned with hashes:
# requirements.lock comes from pyproject.toml via `./dev lock` (pip-compile --generate-hashes)
# and includes the build backend (setuptools), so the build below needs no network.
COPY requirements.lock ./
RUN /app/.venv/bin/python -m pip install --no-cache-dir --require-hashes -r requirements.lock
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
RUN /app/.venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

# --- stage 4: slim runtime: Python + a JRE + the jars -----------------------------------------
FROM ${PYTHON_IMAGE}
ENV JAVA_HOME=/opt/java/openjdk \
    PATH=/app/.venv/bin:/opt/java/openjdk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=jre /opt/java/openjdk /opt/java/openjdk
COPY --from=python /app/.venv /app/.venv
COPY --from=jars /build/.jars /app/.jars
WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /app luxflow && mkdir -p /app/run \
    && chown luxflow /app/run
USER luxflow

# Liveness: healthy while the worker process serves /healthz (both runners). Not /readyz: a sink
# outage stalls every shard at once, and restarting the fleet for it only adds lease moves.
# One line, equal to HEALTH_CHECK_COMMAND in infra/lib/worker.ts (a unit test keeps them equal).
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 CMD ["luxflow", "health", "--url", "http://127.0.0.1:8080/healthz"]

STOPSIGNAL SIGTERM
CMD ["luxflow", "worker", "--runner", "kcl", "--jars", "/app/.jars"]

#!/usr/bin/env bash
# The container image on a machine without a registry or a Docker daemon (docs/image.md).
#
#   scripts/image.sh build    install podman/runc/mmdebstrap if missing (root, apt), bootstrap
#                             Debian bookworm base images with mmdebstrap (cached), build the
#                             Dockerfile on them, then smoke-test the image. Fails loudly.
#   scripts/image.sh smoke    the smoke test alone, on the image last built
#   scripts/image.sh lock     regenerate requirements.lock from pyproject.toml (pip-compile,
#                             hashes); extra arguments go to pip-compile (e.g. --upgrade)
#
# Environment: LUXFLOW_IMAGE (tag, default localhost/luxflow:dev), LUXFLOW_IMAGE_CACHE (base
# tarballs, default .cache/image), LUXFLOW_PIP_COMPILE (pip-compile to run, default .venv's;
# not PIP_COMPILE, which pip reads as its --compile option).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

IMAGE=${LUXFLOW_IMAGE:-localhost/luxflow:dev}
CACHE=${LUXFLOW_IMAGE_CACHE:-.cache/image}
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security
SMOKE=luxflow-smoke-$$
# The daemon's shutdownGraceMillis and the ECS stopTimeout (SIGTERM -> SIGKILL), as in
# streams/kcl/daemon.py and infra/lib/worker.ts.
GRACE_S=45
STOP_TIMEOUT_S=60
# podman on this kind of host: crun fails on hybrid cgroups, and the default ulimits are
# refused; the CA bundle is mounted into the build only (Maven and pip behind a TLS proxy).
PODMAN_RUNTIME=(--runtime runc --ulimit nofile=16384:16384 --ulimit nproc=16384:16384)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31mimage: %s\033[0m\n' "$*" >&2; exit 1; }

ensure_tools() {
  local missing=()
  for tool in podman runc mmdebstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: install podman runc mmdebstrap (apt) or run as root"
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  say "installing podman runc mmdebstrap (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >/dev/null
  for tool in podman runc mmdebstrap; do
    command -v "$tool" >/dev/null || die "$tool still missing after apt-get install"
  done
}

# --- base images --------------------------------------------------------------------------
# Two bases stand in for the three upstream images: python (python:3.11-slim-bookworm) and
# java (maven:3.9-eclipse-temurin-17 and eclipse-temurin:17-jre: Maven, and a self-contained
# JRE copied to /opt/java/openjdk with its symlinks into /etc resolved). Only the python base
# ships (the runtime stage): it alone drops documentation; the java base is a builder (and
# openjdk's postinst needs /usr/share/man/man1).
PYTHON_BASE=(
  --include=python3,python3-venv,ca-certificates
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
)
JAVA_BASE=(
  --include=openjdk-17-jre-headless,ca-certificates-java,maven
  --customize-hook='chroot "$1" sh -ec "mkdir -p /opt/java && cp -rL /usr/lib/jvm/java-17-openjdk-* /opt/java/openjdk && /opt/java/openjdk/bin/java -version"'
)
# dpkg without fsync while bootstrapping (mmdebstrap's own hook): much faster on this disk.
EATMYDATA=/usr/share/mmdebstrap/hooks/eatmydata

# ref NAME ARGS...: the local image name of a base; its tag is a hash of the recipe, so a
# changed recipe bootstraps anew. The tarball is kept in $CACHE (a wiped podman storage only
# re-imports); delete $CACHE to pick up Debian updates.
ref() {
  local name=$1
  shift
  printf 'localhost/luxflow-base-%s:%s-%s' "$name" "$SUITE" \
    "$(printf '%s|' "$SUITE" "$MIRROR" "$@" | sha256sum | cut -c1-12)"
}

tarball() { echo "$CACHE/${1#localhost/luxflow-base-}.tar" | tr ':' '-'; }

# bootstrap TARBALL ARGS...: mmdebstrap a bookworm minbase with ARGS into TARBALL.
bootstrap() {
  local target=$1
  shift
  local hooks=()
  [ -d "$EATMYDATA" ] && hooks=(--hook-dir="$EATMYDATA")
  rm -f "$target.part"
  mmdebstrap --quiet --format=tar --variant=minbase "$@" "${hooks[@]}" \
    --aptopt='Acquire::Retries "3"' "$SUITE" "$target.part" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY $SUITE-security main"
  [ -s "$target.part" ] || { echo "mmdebstrap wrote no $target.part" >&2; return 1; }
  mv "$target.part" "$target"
}

# bases: bootstrap (in parallel) and import the bases podman does not have yet.
bases() {
  PYTHON_REF=$(ref python "${PYTHON_BASE[@]}")
  JAVA_REF=$(ref java "${JAVA_BASE[@]}")
  mkdir -p "$CACHE"
  local pids=() names=() name image target
  for name in python java; do
    if [ $name = python ]; then image=$PYTHON_REF; else image=$JAVA_REF; fi
    target=$(tarball "$image")
    if podman image exists "$image" || [ -s "$target" ]; then continue; fi
    say "bootstrapping the $name base ($SUITE) with mmdebstrap (log: $CACHE/$name.log)"
    if [ $name = python ]; then
      bootstrap "$target" "${PYTHON_BASE[@]}" >"$CACHE/$name.log" 2>&1 &
    else
      bootstrap "$target" "${JAVA_BASE[@]}" >"$CACHE/$name.log" 2>&1 &
    fi
    pids+=($!) names+=("$name")
  done
  local i failed=()
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
  done
  for name in "${failed[@]}"; do
    tail -20 "$CACHE/$name.log" >&2
  done
  [ ${#failed[@]} -eq 0 ] || die "bootstrapping the ${failed[*]} base failed (logs above)"
  for image in "$PYTHON_REF" "$JAVA_REF"; do
    podman image exists "$image" && continue
    say "importing $(tarball "$image") as $image"
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' \
      "$(tarball "$image")" "$image" >/dev/null
  done
}

build() {
  ensure_tools
  bases
  say "building $IMAGE (python base $PYTHON_REF, java base $JAVA_REF)"
  local previous
  previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  [ -r /etc/ssl/certs/ca-certificates.crt ] || die "no host CA bundle in /etc/ssl/certs"
  podman build --quiet --layers --format docker "${PODMAN_RUNTIME[@]}" \
    --volume /etc/ssl/certs:/etc/ssl/certs:ro \
    --build-arg PYTHON_IMAGE="$PYTHON_REF" \
    --build-arg JRE_IMAGE="$JAVA_REF" \
    --build-arg MAVEN_IMAGE="$JAVA_REF" \
    --tag "$IMAGE" . >/dev/null
  # The image this build replaced, alone: `podman image prune` would also drop the builder
  # stages' untagged images, which are the layer cache of the next build.
  if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
  fi
}

# --- smoke test -----------------------------------------------------------------------------
# podman wants systemd for its health-check timers; this host has none, the check is run by
# hand (podman healthcheck run), so its complaint is filtered out.
quiet_systemd() { grep -v 'unable to get systemd connection' >&2 || true; }

run() {
  podman run --rm "${PODMAN_RUNTIME[@]}" --network none --health-cmd none "$IMAGE" "$@" \
    2> >(quiet_systemd)
}

cleanup() { podman rm --force --ignore "$SMOKE" >/dev/null 2>&1 || true; }

smoke() {
  podman image exists "$IMAGE" || die "no image $IMAGE: run ./dev image"
  local size
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  say "smoke-testing $IMAGE ($((size / 1000 / 1000)) MB)"
  say "smoke: luxflow --help"
  local help
  help=$(run luxflow --help) || die "luxflow --help failed in the image"
  grep -q 'worker' <<<"$help" || die "luxflow --help does not list the worker command: $help"

  say "smoke: the image holds the runtime packages and no development tooling"
  local site
  site=$(run python -c 'import os, sysconfig; print(*sorted(os.listdir(sysconfig.get_paths()["purelib"])))')
  echo "   site-packages: $site" >&2
  for package in app.py core domain streams tables sinks lighting cli boto3 msgspec; do
    grep -qw -- "$package" <<<"$site" || die "site-packages lacks $package"
  done
  for package in sim emulators benchmarks tests moto pytest; do
    ! grep -qw -- "$package" <<<"$site" || die "site-packages contains $package"
  done
  local dev_dirs
  dev_dirs=$(run sh -c 'ls -d /app/sim /app/emulators /app/benchmarks /app/tests 2>/dev/null || true')
  [ -z "$dev_dirs" ] || die "the image contains $dev_dirs"

  say "smoke: the host's CA bundle is not baked into the image"
  local bundle
  bundle=$(run cat /etc/ssl/certs/ca-certificates.crt)
  local cert
  for cert in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$cert" ] || continue
    # The certificate's base64 body (one line of it is enough to tell).
    local line
    line=$(sed -n '2p' "$cert")
    ! grep -qF -- "$line" <<<"$bundle" || die "the image trusts the host's $cert"
  done

  say "smoke: the KCL worker (default command) starts with dummy settings and no network"
  trap cleanup EXIT
  # The image's HEALTHCHECK, run by hand below (no systemd here for podman's timer).
  podman run --detach --name "$SMOKE" "${PODMAN_RUNTIME[@]}" --network none \
    --health-interval disable \
    -e AWS_REGION=us-east-1 -e AWS_ACCESS_KEY_ID=smoke -e AWS_SECRET_ACCESS_KEY=smoke \
    -e LUXFLOW_STREAM=luxflow-smoke -e LUXFLOW_APP_NAME=luxflow-smoke "$IMAGE" \
    >/dev/null 2> >(quiet_systemd)
  local waited=0
  until podman healthcheck run "$SMOKE" >/dev/null 2>&1; do
    [ "$(podman inspect --format '{{.State.Running}}' "$SMOKE")" = true ] ||
      { podman logs "$SMOKE" >&2; die "the worker exited before it was healthy"; }
    [ $waited -lt 90 ] || { podman logs "$SMOKE" >&2; die "not healthy after 90 s"; }
    sleep 1
    waited=$((waited + 1))
  done
  echo "   health check passed after ${waited} s (podman healthcheck run: the image's HEALTHCHECK)" >&2
  # Past the JVM's start: the daemon read its properties and its scheduler runs (without a
  # network it keeps retrying to reach DynamoDB: the expected state here).
  until podman logs "$SMOKE" 2>&1 | grep -q 'Initializing LeaseCoordinator'; do
    [ "$(podman inspect --format '{{.State.Running}}' "$SMOKE")" = true ] ||
      { podman logs "$SMOKE" >&2; die "the worker exited after start"; }
    [ $waited -lt 120 ] || { podman logs "$SMOKE" >&2; die "the KCL scheduler never started"; }
    sleep 1
    waited=$((waited + 1))
  done
  echo "   the KCL scheduler runs after ${waited} s" >&2
  podman healthcheck run "$SMOKE" >/dev/null || die "health check failed once the scheduler ran"

  # The JVM's shutdown hook gives the processors up to the grace to checkpoint, then exits;
  # with no network the scheduler never initialized, so the hook waits out the whole grace.
  # The bound that matters is ECS's: exit by itself before the SIGKILL at the stopTimeout.
  say "smoke: SIGTERM ends the worker (grace ${GRACE_S} s) before the ${STOP_TIMEOUT_S} s stopTimeout"
  local start end code elapsed
  start=$(date +%s.%N)
  podman kill --signal TERM "$SMOKE" >/dev/null
  code=$(timeout "$STOP_TIMEOUT_S" podman wait "$SMOKE") ||
    { podman logs "$SMOKE" >&2; die "still running ${STOP_TIMEOUT_S} s after SIGTERM: ECS would SIGKILL it"; }
  end=$(date +%s.%N)
  elapsed=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')
  echo "   exited with code $code ${elapsed} s after SIGTERM; the daemon's last shutdown lines:" >&2
  podman logs "$SMOKE" 2>&1 | grep -iE 'shutdown|graceful' | tail -n 3 | cut -c1-200 |
    sed 's/^/     /' >&2 || true
  case "$code" in
    0 | 143) ;;
    *) podman logs "$SMOKE" >&2; die "the worker exited with $code after SIGTERM (expected 0 or 143)" ;;
  esac
  cleanup
  trap - EXIT
  say "smoke test of $IMAGE ($((size / 1000 / 1000)) MB) passed; SIGTERM to exit ${elapsed} s"
}

lock() {
  local pip_compile=${LUXFLOW_PIP_COMPILE:-.venv/bin/pip-compile}
  [ -x "$pip_compile" ] || die "no $pip_compile: run ./dev setup (pip-tools is a dev extra)"
  local python
  python=$(dirname "$pip_compile")/python
  # The image runs Python 3.11: resolve the lock (its environment markers) with the same.
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    die "resolve the lock with Python 3.11, the image's Python"
  say "requirements.lock from pyproject.toml (pip-compile --generate-hashes)"
  # The build backend writes luxflow.egg-info here while pip-compile reads the metadata; a
  # stray one makes pip believe luxflow is installed wherever PYTHONPATH is this tree.
  local had_egg_info=false
  [ -e luxflow.egg-info ] && had_egg_info=true
  # PIP_FIND_LINKS unset: hashes of what PyPI serves, not of local wheel folders.
  env -u PIP_FIND_LINKS CUSTOM_COMPILE_COMMAND="./dev lock" "$pip_compile" --quiet \
    --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links --all-build-deps \
    --output-file requirements.lock "$@" pyproject.toml
  $had_egg_info || rm -rf luxflow.egg-info
}

cmd=${1:-build}
shift || true
case "$cmd" in
  build)
    started=$(date +%s)
    build
    smoke
    say "./dev image took $(($(date +%s) - started)) s"
    ;;
  smoke) ensure_tools; smoke ;;
  lock) lock "$@" ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

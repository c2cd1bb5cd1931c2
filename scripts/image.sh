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
# tarballs, default .cache/image), PIP_COMPILE (pip-compile to run, default .venv's).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${LUXFLOW_IMAGE:-localhost/luxflow:dev}
CACHE=${LUXFLOW_IMAGE_CACHE:-.cache/image}
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security
SMOKE=luxflow-smoke-$$
# The daemon's shutdownGraceMillis (streams/kcl/daemon.py, infra/lib/worker.ts).
GRACE_S=45
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
# JRE copied to /opt/java/openjdk with its symlinks into /etc resolved).
DPKG_OPTS=(
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
)
PYTHON_PACKAGES=python3,python3-venv,ca-certificates
JAVA_PACKAGES=openjdk-17-jre-headless,ca-certificates-java,maven
JAVA_HOOK='chroot "$1" sh -ec "mkdir -p /opt/java && cp -rL /usr/lib/jvm/java-17-openjdk-* /opt/java/openjdk && /opt/java/openjdk/bin/java -version"'

# base NAME PACKAGES [HOOK]: prints the local image name, bootstrapping it when needed. The
# tag is a hash of the recipe: a changed recipe bootstraps anew; the tarball is kept in
# $CACHE so a wiped podman storage only re-imports. Delete $CACHE to pick up Debian updates.
base() {
  local name=$1 packages=$2 hook=${3:-}
  local recipe="$SUITE|$MIRROR|$packages|$hook|${DPKG_OPTS[*]}"
  local tag
  tag=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
  local ref="localhost/luxflow-base-$name:$SUITE-$tag" tarball="$CACHE/$name-$SUITE-$tag.tar"
  if podman image exists "$ref"; then
    echo "$ref"
    return
  fi
  if [ ! -s "$tarball" ]; then
    say "bootstrapping the $name base ($SUITE: $packages) with mmdebstrap"
    mkdir -p "$CACHE"
    local hooks=()
    [ -n "$hook" ] && hooks=(--customize-hook="$hook")
    rm -f "$tarball.part"
    mmdebstrap --quiet --format=tar --variant=minbase --include="$packages" "${DPKG_OPTS[@]}" \
      --aptopt='Acquire::Retries "3"' "${hooks[@]}" \
      "$SUITE" "$tarball.part" \
      "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
      "deb $SECURITY $SUITE-security main" >&2
    mv "$tarball.part" "$tarball"
  fi
  say "importing $tarball as $ref"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' \
    "$tarball" "$ref" >/dev/null
  echo "$ref"
}

build() {
  ensure_tools
  local python_base java_base
  python_base=$(base python "$PYTHON_PACKAGES")
  java_base=$(base java "$JAVA_PACKAGES" "$JAVA_HOOK")
  say "building $IMAGE (python base $python_base, java base $java_base)"
  [ -r /etc/ssl/certs/ca-certificates.crt ] || die "no host CA bundle in /etc/ssl/certs"
  podman build --quiet --layers --format docker "${PODMAN_RUNTIME[@]}" \
    --volume /etc/ssl/certs:/etc/ssl/certs:ro \
    --build-arg PYTHON_IMAGE="$python_base" \
    --build-arg JRE_IMAGE="$java_base" \
    --build-arg MAVEN_IMAGE="$java_base" \
    --tag "$IMAGE" . >/dev/null
  # Layers of earlier builds stay cached; only dangling images are pruned.
  podman image prune --force >/dev/null
}

# --- smoke test -----------------------------------------------------------------------------
run() { podman run --rm "${PODMAN_RUNTIME[@]}" --network none "$IMAGE" "$@"; }

cleanup() { podman rm --force --ignore "$SMOKE" >/dev/null 2>&1 || true; }

smoke() {
  podman image exists "$IMAGE" || die "no image $IMAGE: run ./dev image"
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
  for package in sim emulators benchmarks tests orjson moto pytest; do
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
  podman run --detach --name "$SMOKE" "${PODMAN_RUNTIME[@]}" --network none \
    -e AWS_REGION=us-east-1 -e AWS_ACCESS_KEY_ID=smoke -e AWS_SECRET_ACCESS_KEY=smoke \
    -e LUXFLOW_STREAM=luxflow-smoke -e LUXFLOW_APP_NAME=luxflow-smoke "$IMAGE" >/dev/null
  local waited=0
  until podman healthcheck run "$SMOKE" >/dev/null 2>&1; do
    [ "$(podman inspect --format '{{.State.Running}}' "$SMOKE")" = true ] ||
      { podman logs "$SMOKE" >&2; die "the worker exited before it was healthy"; }
    [ $waited -lt 90 ] || { podman logs "$SMOKE" >&2; die "not healthy after 90 s"; }
    sleep 1
    waited=$((waited + 1))
  done
  echo "   health check passed after ${waited} s (podman healthcheck run: the image's HEALTHCHECK)" >&2
  # The daemon must be past its start: its properties read and the worker thread running.
  sleep 5
  [ "$(podman inspect --format '{{.State.Running}}' "$SMOKE")" = true ] ||
    { podman logs "$SMOKE" >&2; die "the worker exited after start"; }
  podman healthcheck run "$SMOKE" >/dev/null || die "health check failed 5 s after start"

  say "smoke: SIGTERM ends the worker within the ${GRACE_S} s grace"
  local start end code elapsed
  start=$(date +%s.%N)
  podman kill --signal TERM "$SMOKE" >/dev/null
  code=$(timeout $((GRACE_S + 15)) podman wait "$SMOKE") ||
    { podman logs "$SMOKE" >&2; die "still running $((GRACE_S + 15)) s after SIGTERM"; }
  end=$(date +%s.%N)
  elapsed=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }')
  echo "   exited with code $code ${elapsed} s after SIGTERM" >&2
  awk -v e="$elapsed" -v g="$GRACE_S" 'BEGIN { exit !(e < g) }' ||
    die "SIGTERM to exit took ${elapsed} s, not within the ${GRACE_S} s grace"
  case "$code" in
    0 | 143) ;;
    *) podman logs "$SMOKE" >&2; die "the worker exited with $code after SIGTERM (expected 0 or 143)" ;;
  esac
  cleanup
  trap - EXIT

  local size
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  say "image $IMAGE: $((size / 1000 / 1000)) MB; smoke test passed"
}

lock() {
  local pip_compile=${PIP_COMPILE:-.venv/bin/pip-compile}
  [ -x "$pip_compile" ] || die "no $pip_compile: run ./dev setup (pip-tools is a dev extra)"
  local python
  python=$(dirname "$pip_compile")/python
  # The image runs Python 3.11: resolve the lock (its environment markers) with the same.
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    die "resolve the lock with Python 3.11, the image's Python"
  say "requirements.lock from pyproject.toml (pip-compile --generate-hashes)"
  # PIP_FIND_LINKS unset: hashes of what PyPI serves, not of local wheel folders.
  env -u PIP_FIND_LINKS CUSTOM_COMPILE_COMMAND="./dev lock" "$pip_compile" --quiet \
    --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links --all-build-deps \
    --output-file requirements.lock "$@" pyproject.toml
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

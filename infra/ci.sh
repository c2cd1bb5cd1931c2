#!/usr/bin/env bash
# The CDK app's checks, offline and without AWS credentials:
#   npm ci (only when package-lock.json changed), tsc --noEmit, jest (assertions + the cdk-nag
#   gate), `cdk synth` into infra/cdk.out with the dummy account (cdk.context.json holds its
#   availability zones, so no lookup needs AWS), then cfn-lint and checkov on every synthesized
#   template: any error, warning or failed check fails (findings kept on purpose are suppressed
#   in the CDK code, in the resource's Metadata, with their reason: lib/nag.ts).
# cfn-lint and checkov live in their own venv, infra/.lint-venv, installed from PyPI by this
# script when lint-requirements.txt changed (not in the project's .venv: checkov pins an old boto3).
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\033[1m==> infra: %s\033[0m\n' "$*" >&2; }
command -v npm >/dev/null || { echo "node and npm are required (infra/)" >&2; exit 1; }
LINT_VENV=.lint-venv
lint_stamp="$LINT_VENV/.installed-$(sha256sum lint-requirements.txt | cut -c1-16)"
if [ ! -f "$lint_stamp" ]; then
  say "installing cfn-lint and checkov into infra/$LINT_VENV (lint-requirements.txt)"
  command -v python3 >/dev/null || { echo "python3 is required (cfn-lint, checkov)" >&2; exit 1; }
  rm -rf "$LINT_VENV"
  { python3 -m venv "$LINT_VENV" && "$LINT_VENV/bin/pip" install -q -r lint-requirements.txt; } ||
    { echo "cannot install cfn-lint and checkov into infra/$LINT_VENV (PyPI reachable?)" >&2; exit 1; }
  touch "$lint_stamp"
fi
CFN_LINT=$LINT_VENV/bin/cfn-lint
CHECKOV=$LINT_VENV/bin/checkov
for tool in "$CFN_LINT" "$CHECKOV"; do
  [ -x "$tool" ] || { echo "infra/$tool is missing: delete infra/$LINT_VENV and run again" >&2; exit 1; }
done

stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi

# Never reach AWS: no credentials, dummy region, no telemetry or notices.
export CDK_DISABLE_CLI_TELEMETRY=true
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN || true

say "tsc --noEmit"
npx tsc --noEmit

say "jest"
npx jest --ci "$@"

say "cdk synth (offline, dummy account)"
rm -rf cdk.out
npx cdk synth --no-notices -q --output cdk.out >/dev/null
# A context lookup that needs AWS shows up as `missing` in the manifest: fail on it here
# rather than on a machine with credentials.
node -e '
  const m = require("./cdk.out/manifest.json");
  if (m.missing && m.missing.length) {
    console.error("cdk synth needs context lookups (commit them to cdk.context.json):", JSON.stringify(m.missing));
    process.exit(1);
  }
  const n = Object.values(m.artifacts).filter((a) => a.type === "aws:cloudformation:stack").length;
  console.error(`cdk synth: ${n} top-level stacks in cdk.out`);
'

mapfile -t templates < <(find cdk.out -name '*.template.json' | sort)
[ "${#templates[@]}" -gt 0 ] || { echo "no template in cdk.out" >&2; exit 1; }

say "cfn-lint $("$CFN_LINT" --version | cut -d' ' -f2) on ${#templates[@]} templates, each against its own region"
# Each template is checked against the region it deploys to (its stack's environment in the
# manifests), not cfn-lint's default us-east-1: a resource type or property a region lacks is
# then an error here (E3006) rather than a failed create there.
# Exit code: 0 clean; 2 errors, 4 warnings, 8 informational (or-ed): all of them fail here.
mapfile -t by_region < <(node -e '
  const fs = require("fs"), path = require("path");
  const walk = (dir) => {
    const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
    for (const a of Object.values(m.artifacts || {})) {
      if (a.type === "aws:cloudformation:stack") console.log(a.environment.split("/").pop() + " " + path.join(dir, a.properties.templateFile));
      if (a.type === "cdk:cloud-assembly") walk(path.join(dir, a.properties.directoryName));
    }
  };
  walk("cdk.out");
')
[ "${#by_region[@]}" -eq "${#templates[@]}" ] ||
  { echo "cfn-lint: ${#by_region[@]} templates in the manifests, ${#templates[@]} in cdk.out" >&2; exit 1; }
for region in $(printf '%s\n' "${by_region[@]}" | cut -d' ' -f1 | sort -u); do
  mapfile -t in_region < <(printf '%s\n' "${by_region[@]}" | awk -v r="$region" '$1 == r { print $2 }')
  "$CFN_LINT" --format parseable --regions "$region" -- "${in_region[@]}" ||
    { echo "cfn-lint ($region): findings above" >&2; exit 1; }
done

say "checkov $("$CHECKOV" --version) on ${#templates[@]} templates"
# Files, not the folder: cdk.out also holds the image's build context. --skip-download: no
# platform calls (guidelines, severities); the checks themselves ship with checkov.
files=()
for t in "${templates[@]}"; do files+=(--file "$t"); done
"$CHECKOV" "${files[@]}" --framework cloudformation --skip-download --compact --quiet -o cli ||
  { echo "checkov: failed checks above (fix them, or skip one in code with its reason)" >&2; exit 1; }
echo "checkov: no failed check" >&2

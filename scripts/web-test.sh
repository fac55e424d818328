#!/usr/bin/env bash
# Runs the dashboard's browser tests (web/e2e, node's test runner + playwright-core) in Debian's
# chromium against a stack they start themselves: `cellgate dev` on free ports in a temp dir
# (Postgres, the Temporal dev server, api + worker with 6 s offline detection, a demo fleet and
# its webhook receiver). Screenshots of every page and the stack's log go to web/test-results/
# (CELLGATE_WEB_ARTIFACTS). Needs bin/cellgate built with the dashboard (make build) and
# bin/temporal (make bin/temporal).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bin=${CELLGATE_BIN:-$root/bin/cellgate}
temporal=${CELLGATE_TEMPORAL_BIN:-$root/bin/temporal}
chromium=${CHROMIUM:-/usr/bin/chromium}
for f in "$bin" "$temporal" "$chromium"; do
	if [[ ! -x $f ]]; then
		echo "web-test: $f is missing: make build bin/temporal, and scripts/install-deps.sh for chromium" >&2
		exit 1
	fi
done
if ! command -v node >/dev/null 2>&1; then
	echo "web-test: node (20.9 or later) is missing" >&2
	exit 1
fi
if [[ ! -d web/node_modules/playwright-core ]]; then
	(cd web && npm ci --no-audit --no-fund)
fi

export CELLGATE_BIN=$bin CELLGATE_TEMPORAL_BIN=$temporal CHROMIUM=$chromium
export CELLGATE_WEB_ARTIFACTS=${CELLGATE_WEB_ARTIFACTS:-$root/web/test-results}
rm -rf "$CELLGATE_WEB_ARTIFACTS/screenshots"
mkdir -p "$CELLGATE_WEB_ARTIFACTS"
cd web
# The unit tests of the dashboard's logic (among them: src/lib/api-schema.ts is what
# api/openapi.yaml generates), then the browser tests.
node --import tsx --test src/lib/*.test.ts src/features/*/*.test.ts
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec e2e/*.test.ts

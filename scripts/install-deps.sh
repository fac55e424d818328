#!/usr/bin/env bash
# Installs the system packages cellgate's dev stack and tests need, when they are missing.
# Debian packages via apt-get (as root); nothing is downloaded from anywhere else.
set -euo pipefail

missing=()
need() { # need <command or path> <debian package>
	if [[ $1 == /* ]]; then [[ -e $1 ]] && return; else command -v "$1" >/dev/null 2>&1 && return; fi
	missing+=("$2")
}

# PostgreSQL server binaries (initdb, pg_ctl): the private cluster of `make dev` and the tests.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
	missing+=(postgresql)
fi
need psql postgresql-client
need ip iproute2
need jq jq         # the README walkthrough
need curl curl

if ((${#missing[@]} == 0)); then
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: run as root, or install these Debian packages yourself: ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

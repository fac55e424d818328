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
# iptables (and ip6tables, same package): the relay's and the agent's firewall chains and the
# agent's NAT (package firewall; on Debian 12 it is iptables-nft).
need iptables iptables
# The network-namespace end-to-end tests (e2e/): netns + veth, iperf3 servers and clients, and
# modprobe for the tun/veth modules on hosts that do not autoload them.
need iperf3 iperf3
need ping iputils-ping   # the OpenVPN reconnect-storm test pings through the tunnel
need openvpn openvpn # the OpenVPN server of the relay and the e2e/openvpn tests
need modprobe kmod
# The dashboard's browser tests (web/e2e) drive Debian's chromium with playwright-core: no
# browser is ever downloaded.
need /usr/bin/chromium chromium

# Node.js 20.9 or later with npm builds the dashboard (make web). Debian's nodejs is older, so it
# is not installed from here: say so instead of failing later inside npm.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a == 20 && b >= 9) ? 0 : 1)' 2>/dev/null ||
	! command -v npm >/dev/null 2>&1; then
	echo "install-deps: the dashboard (web/) needs Node.js 20.9 or later and npm on PATH" >&2
	exit 1
fi

# Optional: a comparator for the tunnel benchmarks; skipped when this Debian has no such package.
optional=()
command -v wg >/dev/null 2>&1 || optional+=(wireguard-tools)

if ((${#missing[@]} + ${#optional[@]} == 0)); then
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	if ((${#missing[@]} == 0)); then
		exit 0 # only optional packages are missing: not worth failing a non-root run
	fi
	echo "install-deps: run as root, or install these Debian packages yourself: ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
for pkg in "${optional[@]}"; do
	if apt-cache show "$pkg" >/dev/null 2>&1; then
		missing+=("$pkg")
	else
		echo "install-deps: optional package $pkg does not exist here, skipped"
	fi
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
apt-get install -y -qq --no-install-recommends "${missing[@]}"

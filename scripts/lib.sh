# shellcheck shell=bash
# Shared settings for the project scripts. Sourced, never run.
# Every value can be overridden from the environment.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything a run creates (PostgreSQL cluster, radiusd config, headers, logs)
# lives here; .gitignore keeps it out of git.
STATE=${RLM_RUST_STATE:-$ROOT/.state}

# FreeRADIUS headers: Debian's libfreeradius-dev plus the eight upstream
# headers it lacks, laid out by scripts/setup (see FREERADIUS_INCLUDE in build.rs).
# build.rs finds them in .state by itself, as the README's plain `cargo build`
# does: exported only when they are elsewhere, so the scripts build that way.
FREERADIUS_INCLUDE=${FREERADIUS_INCLUDE:-$STATE/freeradius-include}
if [ "$FREERADIUS_INCLUDE" != "$ROOT/.state/freeradius-include" ]; then
	export FREERADIUS_INCLUDE
fi

# Private PostgreSQL cluster (scripts/pg).
# The release's PostgreSQL (15 on Debian 12, 17 on 13): the newest installed.
if [ -z "${PG_BIN:-}" ]; then
	PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	[ -d "$PG_BIN" ] || PG_BIN=/usr/lib/postgresql/15/bin
fi
PG_DIR=${PG_DIR:-$STATE/pg}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-54329}
PG_DB=${PG_DB:-radius}
PG_ROLE=${PG_ROLE:-radius}
RLM_RUST_DSN=${RLM_RUST_DSN:-host=$PG_HOST port=$PG_PORT user=$PG_ROLE dbname=$PG_DB}
PG_DATA=${PG_DATA:-$PG_DIR/data}
PG_LOG=${PG_LOG:-$PG_DIR/postgres.log}
# Superuser of the private cluster (initdb -U): tests create a database per
# test through it.
PG_ADMIN=${PG_ADMIN:-postgres}
PG_ADMIN_DSN=${PG_ADMIN_DSN:-host=$PG_HOST port=$PG_PORT user=$PG_ADMIN dbname=postgres}
# The test CA (ca.crt, other-ca.crt), server and client certificates, the
# role pg_hba admits over TLS only and the one it admits by client
# certificate (scripts/pg).
PG_TLS_DIR=${PG_TLS_DIR:-$PG_DIR/tls}
PG_TLS_ROLE=${PG_TLS_ROLE:-rlm_tls_only}
PG_TLS_CERT_ROLE=${PG_TLS_CERT_ROLE:-rlm_tls_cert}
# Stock FreeRADIUS schema, loaded where the module's own migration is not
# available yet (scripts/run) and by tests that compare with rlm_sql.
PG_SCHEMA=${PG_SCHEMA:-/etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql}

# radiusd test/demo settings (scripts/raddb, scripts/run).
STOCK_RADDB=${STOCK_RADDB:-/etc/freeradius/3.0}
RADIUS_SECRET=${RADIUS_SECRET:-testing123}
RADIUS_AUTH_PORT=${RADIUS_AUTH_PORT:-1812}
RADIUS_ACCT_PORT=${RADIUS_ACCT_PORT:-1813}
RLM_RUST_SO=${RLM_RUST_SO:-$ROOT/target/release/librlm_rust.so}

RADIUSD=${RADIUSD:-freeradius}

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "ERROR: $*" >&2; exit 1; }

# initdb/postgres refuse to run as root: use the postgres OS user then.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_psql() {
	psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_ROLE" -d "$PG_DB" "$@"
}

# cargo from rustup may not be on PATH in a non-login shell.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
	PATH=$HOME/.cargo/bin:$PATH
fi

# Cached Debian roots (scripts/debroot): another release's FreeRADIUS to build
# and test against, and a clean system to install the packages into.
debroot_dir() { echo "$STATE/roots/$1"; }

# Debian's libfreeradius-dev lacks eight headers that radiusd.h includes. They
# come from Debian's source package of the same version (never committed).
MISSING_HEADERS=(automask.h clients.h connection.h listen.h log.h process.h tmpl.h xlat.h)

# layout_freeradius_headers SYSROOT TARBALL DEST: DEST gets SYSROOT's
# libfreeradius-dev headers plus the eight from TARBALL (freeradius_*.orig.tar.*),
# as build.rs wants them (FREERADIUS_INCLUDE). SYSROOT is / for this machine's
# FreeRADIUS, a scripts/debroot root for another release's.
layout_freeradius_headers() {
	local sysroot=$1 tarball=$2 dest=$3
	[ -d "$sysroot/usr/include/freeradius" ] || die "$sysroot/usr/include/freeradius missing (libfreeradius-dev)"
	local tmp
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" RETURN
	local members=() top h
	# The first member names the top directory; tar gets SIGPIPE after it.
	top=$(tar -tf "$tarball" | sed -n '1{s|/.*||;p;q}') || true
	[ -n "$top" ] || die "cannot read $tarball"
	for h in "${MISSING_HEADERS[@]}"; do members+=("$top/src/include/$h"); done
	tar -xf "$tarball" -C "$tmp" "${members[@]}"
	rm -rf "$dest"
	mkdir -p "$dest/freeradius"
	cp -a "$sysroot/usr/include/freeradius/." "$dest/freeradius/"
	for h in "${MISSING_HEADERS[@]}"; do
		# What upstream's `make install` does to the include paths.
		sed 's|<freeradius-devel/|<freeradius/|g' "$tmp/$top/src/include/$h" >"$dest/freeradius/$h"
	done
	# regex.h includes pcre.h only for two pointer types.
	printf '%s\n' '/* shim: regex.h needs only these two pointer types */' \
		'typedef struct real_pcre pcre;' 'typedef struct pcre_extra pcre_extra;' >"$dest/pcre.h"
}
# What scripts/target makes for a release (headers, freeradius wrapper).
target_dir() { echo "$STATE/targets/$1"; }

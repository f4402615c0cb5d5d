#!/usr/bin/env bash
# The read-replica benchmark of BENCHMARKS.md: the read-heavy mix against a
# private primary alone, then with one and with two hot standbys, each on a
# fresh primary (the demo tenant seeded anew), ROUNDS times interleaved; then
# the write-only mix against the primary alone (the write capacity behind
# docs/SCALING.md). Every run's report is printed and kept in OUT.
#
#   scripts/bench-replicas.sh                  # 60 s per run, 2 rounds
#   SECS=30 ROUNDS=1 scripts/bench-replicas.sh
#
# Needs Redis at REDIS_URL (default redis://127.0.0.1:6379) and the
# machine's PostgreSQL server binaries (like `bisman serve` without
# DATABASE_URL). Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-60}
ROUNDS=${ROUNDS:-2}
CONCURRENCY=${CONCURRENCY:-16}
INSTANCES=${INSTANCES:-2}
OUT=${OUT:-bench-out/replicas}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
unset DATABASE_URL DATABASE_REPLICA_URLS

cargo build --release -p bisman
mkdir -p "$OUT"
bin=target/release/bisman

run() { # name, then loadtest arguments
    local name=$1; shift
    local data
    data=$(mktemp -d "${TMPDIR:-/tmp}/bisman-bench-replicas.XXXXXX")
    chmod 755 "$data" # the server may run as another user (postgres, when we are root)
    echo "== $name: $bin loadtest $* (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
    "$bin" loadtest --data-dir "$data" --instances "$INSTANCES" --concurrency "$CONCURRENCY" \
        --duration "${SECS}s" --revoke-every off --cache-prefix "bench-replicas-$name:" \
        --json "$OUT/$name.json" "$@" | tee "$OUT/$name.md"
    rm -rf "$data"
}

for round in $(seq 1 "$ROUNDS"); do
    for n in 0 1 2; do
        run "read-heavy-r$round-standbys-$n" --mix read-heavy --read-your-writes --replicas "$n"
    done
done
run "write-only" --mix post=1

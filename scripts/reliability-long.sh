#!/usr/bin/env bash
# The long version of the reliability suite (RELIABILITY.md): a 10-minute
# load on three instances, every fault scenario with long phases, the data
# lifecycle's interleavings on larger months, the property tests with many
# cases, and 10 minutes of fuzzing. About 40
# minutes on a 2-core machine. Needs PostgreSQL on 127.0.0.1:5432 and Redis
# on 127.0.0.1:6379 (as .ci/run starts them). Figures go to target/reliability/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/reliability
mkdir -p "$out"
log() { printf '\n== %s\n' "$*"; }

log "build (release)"
cargo build --release -p bisman

log "10-minute load: 3 instances, 8 workers, revocations every 200 ms"
db=bisman_longrun_$$
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
trap 'psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true' EXIT
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
./target/release/bisman migrate
REDIS_URL=redis://127.0.0.1:6379 ./target/release/bisman loadtest \
    --instances 3 --duration 10m --concurrency 8 --cache-prefix "bisman-longrun-$$:" \
    --json "$out/load-10m.json" --logs "$out/load-10m-logs" | tee "$out/load-10m.md"
unset DATABASE_URL

log "fault scenarios, long phases (release)"
BISMAN_FAULT_REQUESTS=5000 BISMAN_LOAD_SECS=300 BISMAN_LOAD_INSTANCES=3 \
    cargo test --release -p bisman --test reliability -- --test-threads 1 --nocapture \
    2>&1 | tee "$out/faults.md"

log "data lifecycle: every command paused at each step, on months of 20,000 rows"
BISMAN_LIFECYCLE_ROWS=20000 cargo test --release -p bisman-db --test lifecycle_interleavings \
    -- --test-threads 1 --nocapture 2>&1 | tee "$out/lifecycle.md"

log "property tests, 20000 cases each"
BISMAN_PROPTEST_CASES=20000 cargo test --release -p bisman-jsonb --test differential
BISMAN_PROPTEST_CASES=5000 cargo test --release -p bisman-db --test identifiers
BISMAN_PROPTEST_CASES=5000 cargo test --release -p bisman-server --test api bad_input

log "fuzz, 10 minutes"
mkdir -p fuzz/corpus/jsonb_parsers
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run jsonb_parsers corpus/jsonb_parsers seeds/jsonb_parsers \
    -- -max_total_time=600 -print_final_stats=1) 2>&1 | tail -20 | tee "$out/fuzz.txt"

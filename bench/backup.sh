#!/usr/bin/env bash
# A backup of a served data directory, next to a plain tar of the same directory with the
# server stopped, in the same run.
#
#   bench/backup.sh [customers] [runs]
#
# Each `cordon backup` runs against the server (it asks it over HTTP), is read back whole by
# the command against its manifest, and the server's log says how long changes waited for
# the store's copy. One backup is then restored and must hold every customer and verify.
# CORDON=PATH runs that binary instead of building this checkout. Needs python3.
set -euo pipefail
customers=${1:-100000}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${CORDON:-}" ]; then cargo build --release -q -p cordon-cli --manifest-path "$root/Cargo.toml"; fi
cordon="${CORDON:-$root/target/release/cordon}"

work=$(mktemp -d)
server=
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
"$cordon" init "$work/data" >/dev/null 2>&1
python3 - "$work" "$customers" <<'PY'
import json, sys
work, count = sys.argv[1], int(sys.argv[2])
with open(f"{work}/customers.jsonl", "w") as out:
    for i in range(count):
        out.write(json.dumps({"id": f"cus-{i}", "full_name": f"Customer Number{i}", "email": f"customer{i}@example.org",
            "phone": f"+1415555{i:04d}"[:12], "balance_usd": (i * 37) % 90000, "postal_address": {"city": "Lisbon", "country": "PT"},
            "two_factor_method": "totp", "last_login_ip": "198.51.100.7"}) + "\n")
PY
"$cordon" import customers "$work/customers.jsonl" --data "$work/data" >/dev/null

now() { date +%s%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

"$cordon" serve --data "$work/data" --listen 127.0.0.1:0 >/dev/null 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q "cordon serving on" "$work/serve.log" && break; sleep 0.1; done
backup_times=()
for run in $(seq "$runs"); do
  start=$(now)
  "$cordon" backup --data "$work/data" --out "$work/backup-$run.tar" >"$work/backup-$run.out" 2>&1 \
    || { cat "$work/backup-$run.out"; echo "FAIL: backup $run"; exit 1; }
  backup_times+=("$(( ($(now) - start) / 1000000 ))")
done
kill -TERM "$server"; wait "$server" || true; server=
paused=$(grep -o 'changes_paused_ms=[0-9]*' "$work/serve.log" | cut -d= -f2)
[ "$(echo "$paused" | wc -l)" -eq "$runs" ] || { echo "FAIL: the server logged $(echo "$paused" | grep -c .) backups of $runs"; exit 1; }

tar_times=()
for run in $(seq "$runs"); do
  start=$(now)
  tar -C "$work" -cf "$work/plain-$run.tar" data
  tar_times+=("$(( ($(now) - start) / 1000000 ))")
done

kek=$(ls "$work/data/keys" | grep '^kek-')
"$cordon" restore --from "$work/backup-1.tar" --data "$work/restored" --kek-file "$work/data/keys/$kek" >"$work/restore.out" 2>&1 \
  || { cat "$work/restore.out"; echo "FAIL: restore"; exit 1; }
grep -q "customers $customers," "$work/restore.out" || { cat "$work/restore.out"; echo "FAIL: the restore lost customers"; exit 1; }

size=$(stat -c %s "$work/backup-1.tar")
plain=$(stat -c %s "$work/plain-1.tar")
backup_median=$(printf '%s\n' "${backup_times[@]}" | median)
tar_median=$(printf '%s\n' "${tar_times[@]}" | median)
echo "customers:                      $customers"
echo "cordon backup (server running): median ${backup_median} ms over $runs runs (${backup_times[*]}), $size bytes"
echo "changes paused (state fixed):  median $(echo "$paused" | median) ms ($(echo $paused))"
echo "tar of the stopped directory:   median ${tar_median} ms over $runs runs (${tar_times[*]}), $plain bytes"
echo "ratio backup / tar:             $(awk -v b="$backup_median" -v t="$tar_median" 'BEGIN { printf "%.2f", b / t }')"
echo "restore: $(grep -c . "$work/restore.out") lines, every customer back, ledger verified"

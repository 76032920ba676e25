#!/usr/bin/env bash
# What a gateway's failure costs on PostgreSQL: two gateways share one database; a client
# sends cards to each in turn (as a load balancer without health checks would), and the
# gateway holding the integrator's lock is killed (SIGKILL) mid-run. Printed: requests that
# failed and for how long, and how long until the survivor integrated past the last entry
# acknowledged before the kill (checkpoints continue). Fails if any acknowledged entry is
# missing from the ledger or the exported ledger does not verify.
#
#   scripts/with-postgres bench/failover.sh [seconds-before-kill] [seconds-after]
set -euo pipefail
before=${1:-3}
after=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
: "${PGHOST:?run this under scripts/with-postgres}"
if [ -z "${CORDON:-}" ]; then cargo build --release -q -p cordon-cli --manifest-path "$root/Cargo.toml"; fi
cordon="${CORDON:-$root/target/release/cordon}"
work=$(mktemp -d)
pids=()
trap 'for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT
psql -q -c "DROP DATABASE IF EXISTS cordon_failover" -c "CREATE DATABASE cordon_failover" 2>/dev/null
url="postgres://$PGUSER@$PGHOST:$PGPORT/cordon_failover"
admin=$("$cordon" init "$work/a" --store "$url" 2>/dev/null)
cp -a "$work/a" "$work/b"
for pair in "a 18301" "b 18302"; do
  set -- $pair
  CORDON_LOG=warn "$cordon" serve --data "$work/$1" --listen "127.0.0.1:$2" 2>>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && break; sleep 0.1; done
done
python3 - "$admin" "${pids[0]}" "$before" "$after" "$work" <<'PY'
import json, os, signal, sys, threading, time, urllib.request, urllib.error
admin, victim, before, after, work = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
ports = [18301, 18302]
def call(port, method, path, token, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.load(response)
call(ports[0], "PUT", "/v1/agents/agt-1", admin, {"name": "A", "team": "l1-chat", "site": "us-sf", "employer": "staff"})
call(ports[1], "PUT", "/v1/customers/cus-1", admin, {"fields": {"full_name": "Nina Simone", "email": "nina@example.org"}})
call(ports[0], "PUT", "/v1/tickets/t-1", admin, {"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1"})
agent = call(ports[0], "POST", "/v1/agents/agt-1/token", admin, {})[1]["token"]
acknowledged, failures, broken, lock = [], [], [], threading.Lock()
stop, killed_at = threading.Event(), [None]
def worker(offset):
    n = offset
    while not stop.is_set():
        n += 1
        port = ports[n % 2]
        try:
            status, card = call(port, "GET", "/v1/customers/cus-1?ticket=t-1", agent)
            with lock: acknowledged.append(card["ledger_index"])
        except (urllib.error.URLError, ConnectionError, OSError):
            with lock: failures.append((time.monotonic(), port))
        except Exception as error:  # an answer that is not a card: the run is not valid
            with lock: broken.append(f"{port}: {error!r}")
            return
threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
for thread in threads: thread.start()
time.sleep(before)
with lock: last_before = max(acknowledged)
killed_at[0] = time.monotonic()
os.kill(victim, signal.SIGKILL)
def checkpoint_size():
    with urllib.request.urlopen("http://127.0.0.1:18302/log/checkpoint", timeout=10) as response:
        return int(response.read().decode().splitlines()[1])
while checkpoint_size() <= last_before:
    time.sleep(0.05)
integrated = time.monotonic() - killed_at[0]
time.sleep(max(0.0, after - integrated))
stop.set()
for thread in threads: thread.join()
assert not broken, f"unexpected answers: {broken[:5]}"
failed = [port for at, port in failures if at >= killed_at[0]]
to_survivor = sum(1 for port in failed if port == 18302)
print(f"requests acknowledged: {len(acknowledged)}; after the kill, failed at the dead gateway: "
      f"{len(failed) - to_survivor} (refused at once: a load balancer reading /readyz stops sending there within "
      f"its check interval), failed at the survivor: {to_survivor}")
assert to_survivor == 0, "the surviving gateway failed requests"
assert not [port for at, port in failures if at < killed_at[0]], "requests failed before the kill"
print(f"checkpoints continue: the survivor integrated past the last entry acknowledged before the kill "
      f"{integrated:.2f} s after it")
json.dump(sorted(set(acknowledged)), open(f"{work}/acknowledged.json", "w"))
assert len(set(acknowledged)) == len(acknowledged), "an index acknowledged twice"
PY
kill -TERM "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
"$cordon" log export --store "$url" --out "$work/export" >/dev/null
"$cordon" log verify "$work/export" --vkey "$(psql -d cordon_failover -tA -c 'SELECT verifier FROM ledger_key')"
"$cordon" log entries "$work/export" >"$work/entries.jsonl"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
entries = [json.loads(line) for line in open(f"{work}/entries.jsonl")]
for index in json.load(open(f"{work}/acknowledged.json")):
    entry = entries[index]
    assert (entry.get("agent"), entry.get("action")) == ("agt-1", "view"), (index, entry)
print(f"every acknowledged card is in the ledger at its index ({len(entries)} entries)")
PY
psql -q -c "DROP DATABASE cordon_failover"

#!/usr/bin/env bash
# Audited reveals through the HTTP API with the store and ledger in PostgreSQL, one gateway
# and then two, beside the embedded default (SQLite and the file ledger) measured in the
# same run on the same data. Each reveal is authorized, durable in the ledger (committed in
# PostgreSQL with synchronous_commit on, or fdatasync'ed by the file ledger) before it is
# answered; any response but 200 fails the run, and each ledger is verified afterwards.
#
#   scripts/with-postgres bench/shared-reveal.sh [seconds] [connections] [customers]
#
# Needs the PG* variables of a PostgreSQL server (scripts/with-postgres sets them), wrk
# (installed here if missing) and python3. CORDON=PATH runs that binary.
set -euo pipefail
seconds=${1:-10}
connections=${2:-64}
customers=${3:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
: "${PGHOST:?run this under scripts/with-postgres}"
if ! command -v wrk >/dev/null; then
  apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
if [ -z "${CORDON:-}" ]; then cargo build --release -q -p cordon-cli --manifest-path "$root/Cargo.toml"; fi
cordon="${CORDON:-$root/target/release/cordon}"
work=$(mktemp -d)
servers=()
trap 'for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT
agents=$(( (customers + 19) / 20 ))
python3 - "$work" "$customers" "$agents" <<'PY'
import json, sys
work, count, agents = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f"{work}/customers.jsonl", "w") as out:
    for i in range(count):
        out.write(json.dumps({"id": f"cus-{i}", "full_name": f"Customer Number{i}", "email": f"customer{i}@example.org",
            "phone": f"+1415555{i:04d}"[:12], "balance_usd": (i * 37) % 90000, "postal_address": {"city": "Lisbon", "country": "PT"},
            "two_factor_method": "totp", "last_login_ip": "198.51.100.7"}) + "\n")
with open(f"{work}/tickets.jsonl", "w") as out:
    for i in range(count):
        out.write(json.dumps({"id": f"t-{i}", "requester": f"cus-{i}", "category": "general_inquiry", "assignee": f"bench-{i % agents}"}) + "\n")
with open(f"{work}/agents.jsonl", "w") as out:
    for a in range(agents):
        out.write(json.dumps({"id": f"bench-{a}", "name": f"Bench Agent {a}", "team": "l1-chat", "site": "us-sf", "employer": "staff", "shift": [0, 0]}) + "\n")
PY

# make NAME [STORE_URL]: a data directory with the bench's agents, customers and tickets.
make() {
  local name=$1 store=${2:-}
  if [ -n "$store" ]; then
    "$cordon" init "$work/$name" --store "$store" >"$work/$name.admin" 2>"$work/$name.init"
  else
    "$cordon" init "$work/$name" >"$work/$name.admin" 2>"$work/$name.init"
  fi
  for kind in agents customers tickets; do "$cordon" import "$kind" "$work/$kind.jsonl" --data "$work/$name" >/dev/null; done
}
# serve DATA PORT: a gateway, waited for until ready.
serve() {
  CORDON_LOG=warn "$cordon" serve --data "$1" --listen "127.0.0.1:$2" 2>>"$work/server-$2.log" &
  servers+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && return; sleep 0.1; done
  echo "the gateway on $2 did not become ready" >&2; exit 1
}
# tokens PORT ADMIN: each agent's session token, one per line.
tokens() {
  python3 - "$1" "$2" "$agents" <<'PY'
import json, sys, urllib.request
port, admin, agents = sys.argv[1], sys.argv[2], int(sys.argv[3])
for a in range(agents):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/agents/bench-{a}/token", data=b"{}", method="POST",
        headers={"authorization": f"Bearer {admin}", "content-type": "application/json"})
    print(json.load(urllib.request.urlopen(request))["token"])
PY
}
# load LABEL CONNECTIONS PORT...: wrk against each port at once (connections split evenly);
# prints the summed requests/s and the worst p99; fails on any response but 200 with the
# asked customer's email.
load() {
  local label=$1 total=$2; shift 2
  local each=$(( total / $# )) files=() clients=()
  for port in "$@"; do
    sed "s#TOKENS#$work/tokens.txt#" "$work/reveal.lua.in" >"$work/reveal-$port.lua"
    wrk -t1 -c"$each" -d"${seconds}s" --latency -s "$work/reveal-$port.lua" "http://127.0.0.1:$port" >"$work/$label-$port.txt" &
    clients+=($!)
    files+=("$work/$label-$port.txt")
  done
  # These wrk processes, not any other on the machine; one that failed fails the run.
  for client in "${clients[@]}"; do
    wait "$client" || { echo "shared-reveal: wrk failed ($label)" >&2; exit 1; }
  done
  if grep -qE "Non-2xx|Socket errors" "${files[@]}" || [ "$(grep -Hc "^Unexpected answers: 0 of" "${files[@]}" | grep -c ':1$')" != "$#" ]; then
    cat "${files[@]}" >&2
    echo "shared-reveal: unexpected responses ($label); the figures are not valid" >&2
    exit 1
  fi
  python3 - "$label" "${files[@]}" <<'PY'
import re, sys
label, files = sys.argv[1], sys.argv[2:]
rate, p99 = 0.0, 0.0
for path in files:
    text = open(path).read()
    rate += float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", text).groups()
    p99 = max(p99, float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit])
print(f"{label}: {rate:,.0f} audited reveals/s, p99 {p99:.2f} ms")
open(f"{files[0]}.rate", "w").write(f"{rate}\n")
PY
}
cat >"$work/reveal.lua.in" <<LUA
local customers = $customers
local agents = $agents
local tokens = {}
for line in io.lines("TOKENS") do tokens[#tokens + 1] = line end
request = function()
  local i = math.random(0, customers - 1)
  local headers = {["content-type"] = "application/json", ["authorization"] = "Bearer " .. tokens[(i % agents) + 1]}
  local body = '{"ticket":"t-' .. i .. '","fields":["email"],"reason":"benchmark"}'
  return wrk.format("POST", "/v1/customers/cus-" .. i .. "/reveal", headers, body)
end
LUA
cat "$root/bench/reveal-answers.lua" >>"$work/reveal.lua.in"

echo "== $customers customers, $agents agents, $connections connections, ${seconds}s each"
# The embedded default.
make embedded
serve "$work/embedded" 18201
tokens 18201 "$(cat "$work/embedded.admin")" >"$work/tokens.txt"
load embedded "$connections" 18201
kill -TERM "${servers[-1]}"; wait "${servers[-1]}" || true
"$cordon" log verify "$work/embedded/ledger" --vkey "$work/embedded/ledger/private/verifier-key" >/dev/null

# PostgreSQL: one gateway, then two on copies of its folder.
psql -q -c "DROP DATABASE IF EXISTS cordon_bench" -c "CREATE DATABASE cordon_bench"
url="postgres://$PGUSER@$PGHOST:$PGPORT/cordon_bench"
make shared "$url"
serve "$work/shared" 18202
tokens 18202 "$(cat "$work/shared.admin")" >"$work/tokens.txt"
load postgres-1 "$connections" 18202
cp -a "$work/shared" "$work/shared-2"
serve "$work/shared-2" 18203
load postgres-2 "$connections" 18202 18203
for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait || true
"$cordon" log export --store "$url" --out "$work/export" >/dev/null
# Checked against the verifier key `cordon init` printed, not one read from the database.
verifier=$(sed -n 's/^audit ledger verifier key: //p' "$work/shared.init")
[ -n "$verifier" ] || { echo "shared-reveal: cordon init printed no verifier key" >&2; exit 1; }
echo "$verifier" >"$work/shared.vkey"
"$cordon" log verify "$work/export" --vkey "$work/shared.vkey"
psql -q -c "DROP DATABASE cordon_bench"
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
rate = lambda label, port: float(open(f"{work}/{label}-{port}.txt.rate").read())
embedded, one, two = rate("embedded", 18201), rate("postgres-1", 18202), rate("postgres-2", 18202)
print(f"postgres, one gateway / embedded: {one / embedded:.2f}; two gateways / one: {two / one:.2f}")
PY

#!/usr/bin/env bash
# Audited reveals through the HTTP API over loopback, next to /healthz on the same server in
# the same run. Each reveal is authorized by the Cedar policies and durable in the audit
# ledger (group-committed fdatasync) before its response is sent.
#
#   bench/http-reveal.sh [seconds] [connections] [customers]
#
# CORDON=PATH runs that binary instead of building this checkout. KEK=hsm moves the
# key-encryption key into a SoftHSM2 token (Debian package `softhsm2`; installed here if
# missing) before serving, so every reveal unwraps its customer's data key inside the token.
# Needs wrk (Debian package `wrk`; installed here if missing) and python3.
set -euo pipefail
seconds=${1:-15}
connections=${2:-64}
customers=${3:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
port=18080

if ! command -v wrk >/dev/null; then
  apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
# CORDON=path runs another build of the binary, for side-by-side comparisons.
if [ -z "${CORDON:-}" ]; then cargo build --release -q -p cordon-cli --manifest-path "$root/Cargo.toml"; fi
cordon="${CORDON:-$root/target/release/cordon}"

work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
admin=$("$cordon" init "$work/data" 2>/dev/null)
# A realistic load: an agent per 20 customers, each revealing its own tickets' customers.
# (One agent revealing thousands of customers is what detection exists to stop: it was
# suspended within seconds and the run measured refusals.)
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
for kind in agents customers tickets; do "$cordon" import "$kind" "$work/$kind.jsonl" --data "$work/data" >/dev/null; done

if [ "${KEK:-file}" = hsm ]; then
  module=/usr/lib/softhsm/libsofthsm2.so
  if [ ! -f "$module" ]; then
    apt-get install -y -qq softhsm2 >/dev/null || { apt-get update -qq && apt-get install -y -qq softhsm2 >/dev/null; }
  fi
  mkdir -p "$work/softhsm/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/softhsm/tokens" \
    >"$work/softhsm/softhsm2.conf"
  export SOFTHSM2_CONF="$work/softhsm/softhsm2.conf"
  softhsm2-util --init-token --free --label cordon --pin 4711-bench --so-pin so-4711 >/dev/null
  (umask 077 && echo 4711-bench >"$work/data/hsm-pin")
  sed -i "s#^module = \"\"#module = \"$module\"#; s#^token_label = \"\"#token_label = \"cordon\"#; s#^pin_file = \"\"#pin_file = \"hsm-pin\"#" \
    "$work/data/cordon.toml"
  "$cordon" keys rotate --data "$work/data" --to hsm
fi

CORDON_LOG=warn "$cordon" serve --data "$work/data" --listen "127.0.0.1:$port" 2>"$work/server.log" &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
# Each agent's session token, from the API, one per line in agent order.
python3 - "$port" "$admin" "$agents" > "$work/tokens.txt" <<'PY'
import json, sys, urllib.request
port, admin, agents = sys.argv[1], sys.argv[2], int(sys.argv[3])
for a in range(agents):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/agents/bench-{a}/token", data=b"{}", method="POST",
        headers={"authorization": f"Bearer {admin}", "content-type": "application/json"})
    print(json.load(urllib.request.urlopen(request))["token"])
PY

cat > "$work/reveal.lua" <<LUA
local customers = $customers
local agents = $agents
local tokens = {}
for line in io.lines("$work/tokens.txt") do tokens[#tokens + 1] = line end
request = function()
  local i = math.random(0, customers - 1)
  local headers = {["content-type"] = "application/json", ["authorization"] = "Bearer " .. tokens[(i % agents) + 1]}
  local body = '{"ticket":"t-' .. i .. '","fields":["email"],"reason":"benchmark"}'
  return wrk.format("POST", "/v1/customers/cus-" .. i .. "/reveal", headers, body)
end
LUA
cat "$root/bench/reveal-answers.lua" >>"$work/reveal.lua"

run() { wrk -t2 -c"$connections" -d"${seconds}s" --latency "$@"; }
echo "== /healthz, $connections connections, ${seconds}s"
run "http://127.0.0.1:$port/healthz" | tee "$work/healthz.txt" | grep -E "Requests/sec|50%|99%|Non-2xx"
echo "== audited reveal, $connections connections, ${seconds}s, $customers customers"
run -s "$work/reveal.lua" "http://127.0.0.1:$port" | tee "$work/reveal.txt" \
  | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors|Unexpected answers"

# Every reveal must have been answered 200 with the value: wrk reports any other status and
# socket errors, the script any answer that is not the customer's email, and each fails the run.
if grep -qE "Non-2xx|Socket errors" "$work/reveal.txt" "$work/healthz.txt" \
  || ! grep -q "^Unexpected answers: 0 of" "$work/reveal.txt"; then
  echo "http-reveal: unexpected responses; the figures above are not valid" >&2
  exit 1
fi
size_before=$(curl -s "http://127.0.0.1:$port/v1/ledger/checkpoint" | sed -n 2p)
kill -TERM "$server"; wait "$server" || true
"$cordon" log verify "$work/data/ledger" --vkey "$work/data/ledger/private/verifier-key"
healthz=$(awk '/Requests\/sec/ {print $2}' "$work/healthz.txt")
reveal=$(awk '/Requests\/sec/ {print $2}' "$work/reveal.txt")
python3 -c "print(f'reveal / healthz throughput: {float($reveal)/float($healthz):.2f} (audited reveals {float($reveal):.0f}/s; target >= 10,000/s with p99 <= 20 ms)')"

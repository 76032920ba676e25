#!/usr/bin/env bash
# Bulk import speed: generates N customers with every catalogue field as JSONL and times
# `cordon import customers` (sealing each field with AES-256-GCM under a fresh data key,
# computing blind indexes, writing SQLite, auditing each batch), beside the time to merely
# read and parse the same file as JSON in Python (a floor for "touching every byte").
#
#   bench/import.sh [customers]
set -euo pipefail
count=${1:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p cordon-cli --manifest-path "$root/Cargo.toml"
cordon="$root/target/release/cordon"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/customers.jsonl" "$count" <<'PY'
import json, sys, random
path, count = sys.argv[1], int(sys.argv[2])
random.seed(7)
with open(path, "w") as out:
    for i in range(count):
        out.write(json.dumps({
            "id": f"cus-{i:07d}", "full_name": f"Given{i % 997} Family{i % 1009}", "date_of_birth": f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}",
            "postal_address": {"street": f"{i % 300} Main Street", "city": "Lisbon", "postal_code": f"{1000 + i % 8999}", "country": "PT"},
            "email": f"customer{i}@example.org", "phone": f"+3519{i:08d}", "government_id_number": f"ID{i:09d}",
            "id_document_image": f"kyc/{i}.jpg", "tax_id": f"TX{i:09d}", "bank_account": f"PT50000201231234567{i:06d}",
            "balance_usd": round(random.lognormvariate(7, 2), 2), "wallet_addresses": [f"bc1q{i:034d}"],
            "transaction_history": [{"date": "2026-10-0" + str(1 + i % 9), "asset": "BTC", "amount": 0.01}],
            "two_factor_method": {"type": "totp"}, "last_login_ip": f"198.51.{i % 256}.{(i // 256) % 256}"}) + "\n")
PY
size=$(du -h "$work/customers.jsonl" | cut -f1)
"$cordon" init "$work/data" >/dev/null 2>&1
parse=$( { /usr/bin/time -f %e python3 -c "import json,sys
for line in open(sys.argv[1]): json.loads(line)" "$work/customers.jsonl"; } 2>&1 )
start=$(date +%s.%N)
"$cordon" import customers "$work/customers.jsonl" --data "$work/data" 2>/dev/null
end=$(date +%s.%N)
python3 -c "
elapsed = $end - $start
print(f'imported $count customers ($size of JSONL) in {elapsed:.1f} s: {$count/elapsed:,.0f} customers/s (target: 1,000,000 in under 60 s)')
print(f'baseline, Python json.loads over the same file: {float(\"$parse\"):.1f} s')"

-- Appended to the reveal benchmarks' wrk scripts (bench/http-reveal.sh, bench/shared-reveal.sh):
-- every answer must be the asked customer's email in the clear. A 200 that says anything else
-- (a masked value, another customer's) is counted, and the script fails the run on any.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) unexpected = 0 end
function response(status, headers, body)
  local asked, value = string.match(body, '^{"customer":"cus%-(%d+)","values":{"email":"customer(%d+)@example%.org"}')
  if status ~= 200 or asked == nil or asked ~= value then unexpected = unexpected + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("unexpected") end
  io.write(string.format("Unexpected answers: %d of %d\n", total, summary.requests))
end

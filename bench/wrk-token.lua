-- wrk script for bench/run: every request carries a real service token.
--
-- BENCH_TOKENS: file of `client_id secret name` lines (from examples/bench_seed.rs).
-- BENCH_MODE:   "allow" (each id with its own secret) or "wrong" (each id with the next
--               line's secret: a real secret of valid format and checksum, wrong for that id).
-- Requests are formatted once per thread in init() and then cycled, so the load generator does
-- no per-request string work. done() prints one BENCHJSON line the harness parses.

local reqs = {}
local n = 0
local i = 0

function init(args)
  local file = os.getenv("BENCH_TOKENS")
  local mode = os.getenv("BENCH_MODE") or "allow"
  local ids, secrets = {}, {}
  for line in io.lines(file) do
    local id, secret = line:match("^(%S+) (%S+)")
    if id then
      ids[#ids + 1] = id
      secrets[#secrets + 1] = secret
    end
  end
  for k = 1, #ids do
    local s = secrets[k]
    if mode == "wrong" then
      s = secrets[(k % #ids) + 1]
    end
    reqs[k] = wrk.format("GET", "/", {
      ["CF-Access-Client-Id"] = ids[k],
      ["CF-Access-Client-Secret"] = s,
    })
  end
  n = #reqs
  i = math.random(n) - 1
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end

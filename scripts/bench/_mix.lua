-- wrk script for bench_load.py: 60 % worker list, 30 % health, 10 % metrics, and a JSON
-- summary line (throughput, errors, p50/p95/p99 in ms) for the benchmark to read.
local paths = {}
for _ = 1, 6 do paths[#paths + 1] = "/v1/workers/list" end
for _ = 1, 3 do paths[#paths + 1] = "/v1/health" end
paths[#paths + 1] = "/metrics"

function setup(thread)
  thread:set("seed", tostring(thread))
end

function init(args)
  math.randomseed(os.time() + #tostring(seed))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "errors": %d, "throughput": %.1f, "p50_ms": %.3f, ' ..
    '"p95_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, errors, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end

-- wrk's end-of-run hook: one machine-readable line for bench-tool (bench/src/load.rs).
-- BENCH <requests> <req/s> <p50 ms> <p99 ms> <errors> (socket errors, timeouts, non-2xx/3xx)
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH\t%d\t%f\t%f\t%f\t%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end

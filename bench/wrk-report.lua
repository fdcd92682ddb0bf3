-- wrk's end-of-run hook: one machine-readable line for bench/run.sh.
-- BENCH <requests> <duration µs> <p50 µs> <p99 µs> <errors> (socket errors, timeouts, non-2xx/3xx)
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH\t%d\t%d\t%d\t%d\t%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end

-- wrk's side of benchmarks/wrk.py: send prepared requests in turn, count answers by status, back off after a
-- 503 as a client honouring Retry-After would, and print one JSON line of results at the end.
-- Arguments (after --): one file per request, each a whole HTTP/1.1 request as it goes on the wire.

local requests = {}
local counter = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i = 1, #args do
    local file = assert(io.open(args[i], "rb"))
    requests[#requests + 1] = file:read("*a")
    file:close()
  end
  counts = {}
  shed_without_retry_after = 0
  backoff = 0
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end

function delay()
  if backoff > 0 then
    backoff = backoff - 1
    return 100
  end
  return 0
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 503 then
    backoff = backoff + 1
    if headers["Retry-After"] == nil and headers["retry-after"] == nil then
      shed_without_retry_after = shed_without_retry_after + 1
    end
  end
end

local function json_counts(thread)
  local parts = {}
  for status, count in pairs(thread:get("counts")) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local merged, shed = {}, 0
  for _, thread in ipairs(threads) do
    merged[#merged + 1] = json_counts(thread)
    shed = shed + thread:get("shed_without_retry_after")
  end
  io.write(string.format(
    'WRK_JSON {"duration_us": %d, "requests": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"shed_without_retry_after": %d, "statuses": [%s]}\n',
    summary.duration, summary.requests, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, shed, table.concat(merged, ", ")))
end

-- wrk script of the benchmark: cycles through a file of presigned request targets.
-- Arguments (after --): TARGETS_FILE METHOD BODY_FILE_OR_EMPTY THREADS
-- Each thread starts at its own offset in the list, so threads do not hit the same key at once.
-- done() prints one line "BENCHJSON {...}" that bench/load.py parses.
local targets, count, position = {}, 0, 0
local method, body = "GET", nil
local thread_number = 0

function setup(thread)
  thread:set("tid", thread_number)
  thread_number = thread_number + 1
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    count = count + 1
    targets[count] = line
  end
  file:close()
  method = args[2]
  if args[3] ~= nil and args[3] ~= "" then
    local body_file = assert(io.open(args[3], "rb"))
    body = body_file:read("*a")
    body_file:close()
  end
  local threads = tonumber(args[4]) or 1
  position = math.floor(count / threads) * (tid or 0)
end

function request()
  position = position % count + 1
  return wrk.format(method, targets[position], nil, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end

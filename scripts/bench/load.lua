-- wrk script for scripts/benchmark.py: `wrk ... -s load.lua -- USERS_FILE status|submit`.
-- USERS_FILE has one "token task_id" per line. Requests go round robin over the users:
-- `status` polls the user's own task, `submit` asks for a new text-to-model task.
local users = {}
local next_user = 1
local mode
local counter = 0

function init(args)
  for line in io.lines(args[1]) do
    local token, task = line:match("^(%S+) (%S+)$")
    users[#users + 1] = {auth = "Bearer " .. token, path = "/tasks/" .. task .. "/status?service=tripo"}
  end
  mode = args[2]
  next_user = math.random(#users)
end

function request()
  local user = users[next_user]
  next_user = next_user % #users + 1
  if mode == "status" then
    return wrk.format("GET", user.path, {Authorization = user.auth})
  end
  counter = counter + 1
  local body = string.format('{"prompt": "a small robot number %d", "style": "toy"}', counter)
  return wrk.format("POST", "/generate/text-to-model",
                    {Authorization = user.auth, ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end

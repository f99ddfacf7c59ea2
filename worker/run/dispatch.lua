-- Hand free slots of one training service to waiting runs, interactive lane first but bulk
-- every Nth grant; a reserve of slots only the interactive lane may take. Leases that ran
-- out are dropped first. A granted run leaves its waiting set and becomes due now.
-- Returns {run, endpoint, version, ...}: the version names the granted run's next step.
local slots_key, interactive_key, bulk_key, owner_key, due_key, grants_key, throttle_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local now, lease_ms, cap, bulk_every, max_grants, reserve, run_prefix =
  tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local endpoints = #KEYS - 7
-- endpoint i's slots are KEYS[7 + i] and its cap ARGV[7 + i]

if redis.call('EXISTS', throttle_key) == 1 then return {} end
for _, run in ipairs(redis.call('ZRANGEBYSCORE', slots_key, '-inf', now)) do
  redis.call('HDEL', owner_key, run)
end
redis.call('ZREMRANGEBYSCORE', slots_key, '-inf', now)
for i = 1, endpoints do redis.call('ZREMRANGEBYSCORE', KEYS[7 + i], '-inf', now) end
local granted = {}
for _ = 1, max_grants do
  local in_use = redis.call('ZCARD', slots_key)
  if in_use >= cap then break end
  local best, best_count = nil, nil
  for i = 1, endpoints do
    local count = redis.call('ZCARD', KEYS[7 + i])
    if count < tonumber(ARGV[7 + i]) and (best_count == nil or count < best_count) then
      best, best_count = i, count
    end
  end
  if best == nil then break end
  local n = redis.call('INCR', grants_key)
  local first, second = interactive_key, bulk_key
  if bulk_every > 0 and n % bulk_every == 0 then first, second = bulk_key, interactive_key end
  if in_use >= cap - reserve then first, second = interactive_key, nil end
  local pick = redis.call('ZRANGE', first, 0, 0)
  local lane = first
  if #pick == 0 and second then pick = redis.call('ZRANGE', second, 0, 0); lane = second end
  if #pick == 0 then break end
  local run = pick[1]
  redis.call('ZREM', lane, run)
  local expiry = now + lease_ms
  redis.call('ZADD', slots_key, expiry, run)
  redis.call('ZADD', KEYS[7 + best], expiry, run)
  redis.call('HSET', owner_key, run, best - 1)
  redis.call('ZADD', due_key, now, run)
  table.insert(granted, run)
  table.insert(granted, best - 1)
  table.insert(granted, redis.call('HGET', run_prefix .. run, F_VERSION) or -1)
end
return granted

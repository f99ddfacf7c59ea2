-- Trim the oldest entries of a tenant's model history that a written archive part holds and
-- clear the intent, at once, under the archiver's lease. Deploys only push at the head, so
-- the tail is what the intent named unless it was trimmed already.
-- KEYS: the lease, the intents hash, the tenant's model history.
-- ARGV: lease owner, part path, then the entries (JSON) in list order, ending at the tail.
-- Returns the number of entries removed, or -1 when the caller no longer holds the lease.
local lease_key, intents_key, models_key = KEYS[1], KEYS[2], KEYS[3]
local owner, part = ARGV[1], ARGV[2]
if redis.call('GET', lease_key) ~= owner then return -1 end
local n = #ARGV - 2
local removed = 0
if n > 0 then
  local tail = redis.call('LRANGE', models_key, -n, -1)
  local same = #tail == n
  for i = 1, n do
    if not same or tail[i] ~= ARGV[i + 2] then same = false; break end
  end
  if same then
    redis.call('LTRIM', models_key, 0, -(n + 1))
    removed = n
  end
end
redis.call('HDEL', intents_key, part)
return removed

-- The one lease primitive for a run whose training job runs: renew its slot's lease, or take
-- the slot back if the lease ran out, when the service and the endpoint still have room.
-- Returns 0 when renewed, 1 when taken back, -1 when the slot is lost and the caps are full
-- (the job must not go on running beyond them).
local slots_key, endpoint_key, owner_key = KEYS[1], KEYS[2], KEYS[3]
local run_id, expiry_ms, endpoint, now_ms, cap, endpoint_cap =
  ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local lease = redis.call('ZSCORE', slots_key, run_id)
if lease and tonumber(lease) > now_ms then
  redis.call('ZADD', slots_key, expiry_ms, run_id)
  redis.call('ZADD', endpoint_key, expiry_ms, run_id)
  redis.call('HSET', owner_key, run_id, endpoint)
  return 0
end
-- Lost (or expired and not yet swept away): count only the leases still alive.
local live = redis.call('ZCOUNT', slots_key, '(' .. now_ms, '+inf')
local live_endpoint = redis.call('ZCOUNT', endpoint_key, '(' .. now_ms, '+inf')
if live >= cap or live_endpoint >= endpoint_cap then
  redis.call('ZREM', slots_key, run_id)
  redis.call('ZREM', endpoint_key, run_id)
  redis.call('HDEL', owner_key, run_id)
  return -1
end
redis.call('ZADD', slots_key, expiry_ms, run_id)
redis.call('ZADD', endpoint_key, expiry_ms, run_id)
redis.call('HSET', owner_key, run_id, endpoint)
return 1

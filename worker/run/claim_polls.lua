-- Claim the parked runs whose poll is due: each is pushed back to a claim deadline, so a
-- sweeper that dies mid-sweep leaves them to another one after that (or at once, when its
-- worker's heartbeat lapses: the claims are recorded under the claiming worker).
local polls_key, claims_key = KEYS[1], KEYS[2]
local now_ms, claim_until_ms, limit = ARGV[1], ARGV[2], ARGV[3]

local due = redis.call('ZRANGEBYSCORE', polls_key, '-inf', now_ms, 'LIMIT', 0, limit)
for _, run_id in ipairs(due) do
  redis.call('ZADD', polls_key, 'XX', claim_until_ms, run_id)
  redis.call('SADD', claims_key, run_id)
end
return due

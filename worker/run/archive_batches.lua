-- Remove finished batches whose summaries a written archive part holds, index each to the
-- part, clear the intent: all at once, under the archiver's lease.
-- KEYS: the lease, the intents hash, the archived-batches index, the batches zset, then per
--   batch its hash and its run list. ARGV: lease owner, part path, index value, batch ids.
-- Returns the number of batches removed, or -1 when the caller no longer holds the lease.
local lease_key, intents_key, index_key, batches_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local owner, part, where = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', lease_key) ~= owner then return -1 end
local removed = 0
for i = 4, #ARGV do
  local batch_id = ARGV[i]
  local at = 5 + (i - 4) * 2
  if redis.call('DEL', KEYS[at]) == 1 then
    removed = removed + 1
    redis.call('HSET', index_key, batch_id, where)
  end
  redis.call('DEL', KEYS[at + 1])
  redis.call('ZREM', batches_key, batch_id)
end
redis.call('HDEL', intents_key, part)
return removed

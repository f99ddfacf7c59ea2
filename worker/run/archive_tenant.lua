-- Remove an offboarded tenant's record whose archive part is written, leaving a tombstone
-- (field 'archived' naming the part) so its id is not onboarded again before it is erased;
-- clear the intent. All at once, under the archiver's lease.
-- KEYS: the lease, the intents hash, the tenant hash, its run set, its model history, its
--   preflight record, the offboarded zset. ARGV: lease owner, part path, tenant id.
-- Returns 1 when removed, 0 when runs or history came back (nothing removed), -1 when the
-- caller no longer holds the lease.
local lease_key, intents_key, tenant_key, runs_key, models_key, verified_key, offboarded_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local owner, part, tenant_id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', lease_key) ~= owner then return -1 end
local removed = 0
if redis.call('ZCARD', runs_key) == 0 and redis.call('LLEN', models_key) == 0
    and redis.call('HEXISTS', tenant_key, 'doc') == 1 then
  redis.call('DEL', tenant_key, verified_key)
  redis.call('HSET', tenant_key, 'archived', part)
  redis.call('ZREM', offboarded_key, tenant_id)
  removed = 1
end
redis.call('HDEL', intents_key, part)
return removed

-- Remove the runs a written archive part holds, index each to the part, clear the intent:
-- all at once, under the archiver's lease, so a run is either in Redis or archived.
-- KEYS: the lease, the intents hash, the archived index, the tenant's run set, due, polls,
--   then one batch run list per run (the no-batch placeholder for runs outside a batch).
-- ARGV: lease owner, part path, index value, run prefix, then the run ids (KEYS' order).
-- Returns the number of runs removed, or -1 when the caller no longer holds the lease.
local lease_key, intents_key, index_key, tenant_runs_key, due_key, polls_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local owner, part, where, run_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('GET', lease_key) ~= owner then return -1 end
local removed = 0
for i = 5, #ARGV do
  local run_id = ARGV[i]
  if redis.call('DEL', run_prefix .. run_id) == 1 then
    removed = removed + 1
    redis.call('HSET', index_key, run_id, where)
  end
  redis.call('ZREM', tenant_runs_key, run_id)
  redis.call('ZREM', due_key, run_id)
  redis.call('ZREM', polls_key, run_id)
  redis.call('LREM', KEYS[i + 2], 1, run_id)
end
redis.call('HDEL', intents_key, part)
return removed

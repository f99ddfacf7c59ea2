-- Remove the runs a written archive part holds, index each to the part, clear the intent:
-- all at once, under the archiver's lease, so a run is either in Redis or archived.
-- The part gets a number (archive:parts maps it to its name); each removed run gets one
-- entry in the compact index: bucket hash archived:{id[1..4]}, field id[5..14], value the
-- part number (numbers of other parts first, comma-separated, when two ids share the field).
-- KEYS: the lease, the intents hash, the parts hash, the part counter, the tenant's run set,
--   due, polls, then one batch run list per run (the no-batch placeholder outside a batch).
-- ARGV: lease owner, part path, index value (part name), run prefix, index prefix, then the
--   run ids (KEYS' order).
-- Returns the number of runs removed, or -1 when the caller no longer holds the lease.
local lease_key, intents_key, parts_key, seq_key, tenant_runs_key, due_key, polls_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local owner, part, where, run_prefix, index_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('GET', lease_key) ~= owner then return -1 end
local removed = 0
local number = nil
for i = 6, #ARGV do
  local run_id = ARGV[i]
  if redis.call('DEL', run_prefix .. run_id) == 1 then
    removed = removed + 1
    if number == nil then
      number = redis.call('INCR', seq_key)
      redis.call('HSET', parts_key, number, where)
    end
    local bucket = index_prefix .. string.sub(run_id, 1, 4)
    local field = string.sub(run_id, 5, 14)
    local before = redis.call('HGET', bucket, field)
    if before then
      redis.call('HSET', bucket, field, before .. ',' .. number)
    else
      redis.call('HSET', bucket, field, number)
    end
  end
  redis.call('ZREM', tenant_runs_key, run_id)
  redis.call('ZREM', due_key, run_id)
  redis.call('ZREM', polls_key, run_id)
  redis.call('LREM', KEYS[i + 2], 1, run_id)
end
redis.call('HDEL', intents_key, part)
return removed

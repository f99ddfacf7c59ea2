-- Create a run unless the tenant has an active one (then return that, flagging a rerun).
-- A run created waiting goes straight into its waiting set (scored ARGV[8]), with no step
-- pending.
local tenant_key, run_key, due_key, tenant_runs_key, batch_key, batch_runs_key, waiting_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local run_id, doc, now_ms, rerun, run_prefix, in_batch, created_waiting, waiting_score =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]

if redis.call('HEXISTS', tenant_key, 'doc') == 0 then return {-1, ''} end
local active = redis.call('HGET', tenant_key, 'active_run')
if active then
  local active_state = redis.call('HGET', run_prefix .. active, F_STATE)
  if active_state and not TERMINAL[active_state] then
    if rerun == '1' then redis.call('HSET', run_prefix .. active, F_RERUN, '1') end
    return {0, active}
  end
end
local state = S_QUEUED
if created_waiting == '1' then state = S_WAITING_SLOT end
redis.call('HSET', run_key, F_DOC, doc, F_STATE, state, F_VERSION, 0)
redis.call('HSET', tenant_key, 'active_run', run_id)
if created_waiting == '1' then
  redis.call('ZADD', waiting_key, 'NX', waiting_score, run_id)
else
  redis.call('ZADD', due_key, now_ms, run_id)
end
redis.call('ZADD', tenant_runs_key, now_ms, run_id)
if in_batch == '1' then
  redis.call('HINCRBY', batch_key, 'n:' .. state, 1)
  redis.call('RPUSH', batch_runs_key, run_id)
end
return {1, run_id}

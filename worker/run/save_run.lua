-- Compare-and-set of a run record on its version, and every index that follows from it.
-- A run parked with the poll sweeper is off the due list and on the polls list instead; any
-- other save takes it off the polls list. A run flagged for cancel stays due (now) until a
-- step ends it. Polls made by steps add to the hash's poll count.
local run_key, due_key, batch_key, tenant_key, waiting_key, polls_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local expected, state, doc, due_ms, run_id, waiting_score, now_ms, park_ms, polls_added =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]

if redis.call('HGET', run_key, F_VERSION) ~= expected then return 0 end
local old_state = redis.call('HGET', run_key, F_STATE)
redis.call('HSET', run_key, F_DOC, doc, F_STATE, state, F_VERSION, tonumber(expected) + 1)
-- A cancel asked while the saving step ran (it read the run before): due now, not dropped.
if not TERMINAL[state] and redis.call('HEXISTS', run_key, F_CANCEL) == 1 then due_ms = now_ms end
if due_ms == '' then
  redis.call('ZREM', due_key, run_id)
else
  redis.call('ZADD', due_key, due_ms, run_id)
end
if waiting_score ~= '' then
  redis.call('ZADD', waiting_key, 'NX', waiting_score, run_id)
elseif TERMINAL[state] then
  -- An ended run (cancelled while waiting, say) never takes a slot.
  redis.call('ZREM', waiting_key, run_id)
end
if park_ms == '' then
  redis.call('ZREM', polls_key, run_id)
else
  redis.call('ZADD', polls_key, park_ms, run_id)
end
if polls_added ~= '0' then redis.call('HINCRBY', run_key, F_POLLS, polls_added) end
if old_state ~= state and redis.call('EXISTS', batch_key) == 1 then
  redis.call('HINCRBY', batch_key, 'n:' .. old_state, -1)
  redis.call('HINCRBY', batch_key, 'n:' .. state, 1)
  if TERMINAL[state] then
    redis.call('HSETNX', batch_key, 'first_finished_ms', now_ms)
    redis.call('HSET', batch_key, 'last_finished_ms', now_ms)
  end
end
if TERMINAL[state] and redis.call('HGET', tenant_key, 'active_run') == run_id then
  redis.call('HDEL', tenant_key, 'active_run')
end
return 1

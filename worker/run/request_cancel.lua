-- Flag a run for cancellation and make it due now, so its next step ends it.
-- Returns 0 when there is no such run, 1 when flagged.
local run_key, due_key = KEYS[1], KEYS[2]
local run_id, now_ms = ARGV[1], ARGV[2]

if redis.call('EXISTS', run_key) == 0 then return 0 end
redis.call('HSET', run_key, F_CANCEL, '1')
if not TERMINAL[redis.call('HGET', run_key, F_STATE)] then
  redis.call('ZADD', due_key, now_ms, run_id)
end
return 1

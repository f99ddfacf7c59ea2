-- Release what a worker whose heartbeat lapsed held, at most once: its arq steps (their
-- in-progress keys go, so arq runs them again at once) and its sweeper's claims (the runs
-- become due for a poll now). Returns {steps released, claims released}, or {} when the
-- worker is alive or another worker released it first.
local heartbeat_key, workers_key, steps_key, claims_key, polls_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local worker_id, in_progress_prefix, now_ms = ARGV[1], ARGV[2], ARGV[3]

if redis.call('EXISTS', heartbeat_key) == 1 then return {} end
if redis.call('ZREM', workers_key, worker_id) == 0 then return {} end
local steps = redis.call('SMEMBERS', steps_key)
for _, job_id in ipairs(steps) do redis.call('DEL', in_progress_prefix .. job_id) end
local claims = redis.call('SMEMBERS', claims_key)
for _, run_id in ipairs(claims) do redis.call('ZADD', polls_key, 'XX', now_ms, run_id) end
redis.call('DEL', steps_key, claims_key)
return {#steps, #claims}

-- Give back a run's slot on every endpoint of its service. Returns 1 if it held one.
local slots_key, owner_key = KEYS[1], KEYS[2]
local run_id = ARGV[1]

local held = redis.call('ZREM', slots_key, run_id)
redis.call('HDEL', owner_key, run_id)
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], run_id) end
return held

-- Record the intent to archive runs into one part, under the archiver's lease.
-- KEYS: the lease, the intents hash. ARGV: lease owner, part path, intent JSON.
-- Returns 1 when recorded (or already recorded), 0 when the caller no longer holds the lease.
local lease_key, intents_key = KEYS[1], KEYS[2]
local owner, part, intent = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', lease_key) ~= owner then return 0 end
redis.call('HSETNX', intents_key, part, intent)
return 1

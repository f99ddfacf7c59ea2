-- Take, keep or give back the archiver's lease (an owner and a TTL).
-- KEYS: the lease. ARGV: owner, ttl ms (0: give it back if the owner holds it).
-- Returns 1 when the owner holds the lease (or gave it back), 0 when another worker holds it.
local lease_key = KEYS[1]
local owner, ttl_ms = ARGV[1], tonumber(ARGV[2])
local holder = redis.call('GET', lease_key)
if holder and holder ~= owner then return 0 end
if ttl_ms == 0 then
  if holder then redis.call('DEL', lease_key) end
  return 1
end
redis.call('SET', lease_key, owner, 'PX', ttl_ms)
return 1

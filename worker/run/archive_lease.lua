-- Take, renew or give back the archiver's lease (an owner and a TTL).
-- KEYS: the lease. ARGV: owner, ttl ms (0: give it back if the owner holds it), and
--   optionally 'renew': extend the owner's lease only, never take a lapsed or free one.
-- Returns 1 when the owner holds the lease (or gave it back), 0 when it does not: another
-- worker holds it, or (renewing) it lapsed or was taken away.
local lease_key = KEYS[1]
local owner, ttl_ms, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local holder = redis.call('GET', lease_key)
if mode == 'renew' then
  if holder ~= owner then return 0 end
  redis.call('PEXPIRE', lease_key, ttl_ms)
  return 1
end
if holder and holder ~= owner then return 0 end
if ttl_ms == 0 then
  if holder then redis.call('DEL', lease_key) end
  return 1
end
redis.call('SET', lease_key, owner, 'PX', ttl_ms)
return 1

"""Lua scripts of tenants, locks and schedules (the run ledger keeps its own beside it)."""

from __future__ import annotations

# Compare-and-set of a document hash (tenants) on its version.
# KEYS: the hash. ARGV: expected version, new doc.
SAVE_DOC = """
local version = redis.call('HGET', KEYS[1], 'version')
if version ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'version', tonumber(ARGV[1]) + 1)
return 1
"""

# Create a tenant's record, its version and its place in the tenant index at once.
# KEYS: the tenant hash, the tenants zset. ARGV: doc, tenant id, creation score.
# Returns 1 when created, 0 when the id is taken.
CREATE_DOC = """
local tenant_key, tenants_key = KEYS[1], KEYS[2]
local doc, tenant_id, score = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', tenant_key, 'doc') == 1 then return 0 end
-- An offboarded tenant whose record was archived keeps its id until it is erased.
if redis.call('HEXISTS', tenant_key, 'archived') == 1 then return 0 end
redis.call('HSET', tenant_key, 'doc', doc, 'version', 0)
redis.call('ZADD', tenants_key, score, tenant_id)
return 1
"""

# Compare-and-set of a tenant record that also pushes an entry on a list (its model history),
# both or neither. KEYS: the hash, the list. ARGV: expected version, new doc, list entry.
SAVE_DOC_AND_PUSH = """
local doc_key, list_key = KEYS[1], KEYS[2]
local expected, doc, entry = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', doc_key, 'version') ~= expected then return 0 end
redis.call('HSET', doc_key, 'doc', doc, 'version', tonumber(expected) + 1)
redis.call('LPUSH', list_key, entry)
return 1
"""

# Take or keep a per-tenant deploy lock. KEYS: lock. ARGV: owner, ttl ms.
LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Release a lock only if we hold it. KEYS: lock. ARGV: owner.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Claim one due slot of a schedule: exactly one caller moves it to its next slot.
# KEYS: schedules zset, pending hash. ARGV: name, slot ms, next slot ms.
CLAIM_SCHEDULE = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# Read what the fleet view counts of a page of tenants, inside Redis: one call per page
# instead of three commands per tenant. Offboarded tenants are left out.
# KEYS: tenants zset. ARGV: offset, count, runs created since (ms), tenant key prefix,
#       run key prefix, suffix of a tenant's runs key.
# Returns {tenants, recent}: tenants is flat (kind, '1' if a model is deployed else '0',
# latest run's state or ''); recent is flat (state, created ms) of the tenants' runs created
# since ARGV[3] whose records still exist.
FLEET_PAGE = """
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1)
local tenants, recent = {}, {}
for _, id in ipairs(ids) do
  local doc = redis.call('HGET', ARGV[4] .. id, 'doc')
  if doc then
    local tenant = cjson.decode(doc)
    if tenant.deleted ~= true then
      local deployed = '0'
      if tenant.deployed ~= nil and tenant.deployed ~= cjson.null then deployed = '1' end
      local runs = ARGV[4] .. id .. ARGV[6]
      local latest = redis.call('ZREVRANGE', runs, 0, 0)[1]
      local state = latest and redis.call('HGET', ARGV[5] .. latest, 'state') or ''
      table.insert(tenants, tenant.target.kind)
      table.insert(tenants, deployed)
      table.insert(tenants, state)
      local since = redis.call('ZRANGEBYSCORE', runs, ARGV[3], '+inf', 'WITHSCORES')
      for i = 1, #since, 2 do
        local run_state = redis.call('HGET', ARGV[5] .. since[i], 'state')
        if run_state then
          table.insert(recent, run_state)
          table.insert(recent, since[i + 1])
        end
      end
    end
  end
end
return {tenants, recent}
"""

# Create a tenant of a v2 serving pool: its record as CREATE_DOC does, and one more tenant
# in the pool's count, both only while the pool has room. KEYS: the tenant hash, the tenants
# zset, the pool counts hash. ARGV: doc, tenant id, creation score, pool, capacity.
# Returns 1 when created, 0 when the id is taken, -1 when the pool is full.
CREATE_POOLED_DOC = """
local tenant_key, tenants_key, pools_key = KEYS[1], KEYS[2], KEYS[3]
local doc, tenant_id, score, pool, capacity = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HEXISTS', tenant_key, 'doc') == 1 then return 0 end
if redis.call('HEXISTS', tenant_key, 'archived') == 1 then return 0 end
if tonumber(redis.call('HGET', pools_key, pool) or '0') >= tonumber(capacity) then return -1 end
redis.call('HSET', tenant_key, 'doc', doc, 'version', 0)
redis.call('ZADD', tenants_key, score, tenant_id)
redis.call('HINCRBY', pools_key, pool, 1)
return 1
"""

# Compare-and-set of a tenant record that leaves its v2 pool: one tenant fewer in the pool's
# count, in the same write. KEYS: the tenant hash, the pool counts hash. ARGV: expected
# version, new doc, pool.
SAVE_DOC_LEAVING_POOL = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'version', tonumber(ARGV[1]) + 1)
if tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[3], -1)
end
return 1
"""

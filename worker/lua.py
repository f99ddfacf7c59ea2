"""Lua scripts that make multi-key updates of runs, tenants and slots atomic in Redis."""

from __future__ import annotations

TERMINAL = "{succeeded=true, rejected=true, failed=true, cancelled=true}"

# Compare-and-set of a run record on its version, plus every index that follows from it.
# A run parked with the poll sweeper is off the due list and on the polls list instead; any
# other save takes it off the polls list. A run flagged for cancel stays due (now) until a
# step ends it. Polls made by steps and sweeps add to ``polls``.
# KEYS: run, due, batch (or placeholder), tenant, waiting (or placeholder), polls
# ARGV: expected version, new state, new doc, due ms ('' = not due), run id,
#       waiting score ('' = none), now ms, park ms ('' = not parked), polls to add
SAVE_RUN = f"""
local terminal = {TERMINAL}
local version = redis.call('HGET', KEYS[1], 'version')
if version ~= ARGV[1] then return 0 end
local old_state = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'state', ARGV[2], 'version', tonumber(ARGV[1]) + 1)
local due = ARGV[4]
-- A cancel asked while the saving step ran (it read the run before): due now, not dropped.
if not terminal[ARGV[2]] and redis.call('HEXISTS', KEYS[1], 'cancel') == 1 then
  due = ARGV[7]
end
if due == '' then
  redis.call('ZREM', KEYS[2], ARGV[5])
else
  redis.call('ZADD', KEYS[2], due, ARGV[5])
end
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[5], 'NX', ARGV[6], ARGV[5]) end
if ARGV[8] == '' then
  redis.call('ZREM', KEYS[6], ARGV[5])
else
  redis.call('ZADD', KEYS[6], ARGV[8], ARGV[5])
end
if ARGV[9] ~= '0' then redis.call('HINCRBY', KEYS[1], 'polls', ARGV[9]) end
if old_state ~= ARGV[2] and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'n:' .. old_state, -1)
  redis.call('HINCRBY', KEYS[3], 'n:' .. ARGV[2], 1)
  if terminal[ARGV[2]] then
    redis.call('HSETNX', KEYS[3], 'first_finished_ms', ARGV[7])
    redis.call('HSET', KEYS[3], 'last_finished_ms', ARGV[7])
  end
end
if terminal[ARGV[2]] and redis.call('HGET', KEYS[4], 'active_run') == ARGV[5] then
  redis.call('HDEL', KEYS[4], 'active_run')
end
return 1
"""

# Claim the parked runs whose poll is due: each is pushed back to a claim deadline, so a
# sweeper that dies mid-sweep leaves them to another one after that.
# KEYS: polls. ARGV: now ms, claim deadline ms, max runs.
CLAIM_POLLS = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, run_id in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], run_id) end
return due
"""

# Create a run unless the tenant has an active one (then return that, flagging a rerun).
# A run created waiting goes straight into its waiting set, with no step pending.
# KEYS: tenant, run, due, tenant runs, batch (or placeholder), batch runs (or placeholder),
#       waiting set (or placeholder)
# ARGV: run id, doc, now ms, rerun flag ('1'/'0'), run key prefix, in-batch flag ('1'/'0'),
#       created-waiting flag ('1'/'0')
CREATE_RUN = f"""
local terminal = {TERMINAL}
if redis.call('HEXISTS', KEYS[1], 'doc') == 0 then return {{-1, ''}} end
local active = redis.call('HGET', KEYS[1], 'active_run')
if active then
  local state = redis.call('HGET', ARGV[5] .. active, 'state')
  if state and not terminal[state] then
    if ARGV[4] == '1' then redis.call('HSET', ARGV[5] .. active, 'rerun', '1') end
    return {{0, active}}
  end
end
local state = 'queued'
if ARGV[7] == '1' then state = 'waiting_slot' end
redis.call('HSET', KEYS[2], 'doc', ARGV[2], 'state', state, 'version', 0)
redis.call('HSET', KEYS[1], 'active_run', ARGV[1])
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[7], 'NX', ARGV[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
end
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
if ARGV[6] == '1' then
  redis.call('HINCRBY', KEYS[5], 'n:' .. state, 1)
  redis.call('RPUSH', KEYS[6], ARGV[1])
end
return {{1, ARGV[1]}}
"""

# Compare-and-set of a document hash (tenants) on its version.
# KEYS: the hash. ARGV: expected version, new doc.
SAVE_DOC = """
local version = redis.call('HGET', KEYS[1], 'version')
if version ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'version', tonumber(ARGV[1]) + 1)
return 1
"""

# Hand free BES slots of one training service to waiting runs, interactive lane first.
# KEYS: service slots, waiting interactive, waiting bulk, owner hash, due, grant counter,
#       throttle, endpoint slots 0..n-1
# ARGV: now ms, lease ms, service cap, bulk every N grants, max grants,
#       slots only the interactive lane may take (the reserve), cap of endpoint 0..n-1
DISPATCH = """
if redis.call('EXISTS', KEYS[7]) == 1 then return {} end
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, run in ipairs(expired) do redis.call('HDEL', KEYS[4], run) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local endpoints = #KEYS - 7
for i = 1, endpoints do redis.call('ZREMRANGEBYSCORE', KEYS[7 + i], '-inf', now) end
local granted = {}
local cap = tonumber(ARGV[3])
local bulk_every = tonumber(ARGV[4])
local reserve = tonumber(ARGV[6])
for _ = 1, tonumber(ARGV[5]) do
  local in_use = redis.call('ZCARD', KEYS[1])
  if in_use >= cap then break end
  local best, best_count = nil, nil
  for i = 1, endpoints do
    local count = redis.call('ZCARD', KEYS[7 + i])
    if count < tonumber(ARGV[6 + i]) and (best_count == nil or count < best_count) then
      best, best_count = i, count
    end
  end
  if best == nil then break end
  local n = redis.call('INCR', KEYS[6])
  local first, second = KEYS[2], KEYS[3]
  if bulk_every > 0 and n % bulk_every == 0 then first, second = KEYS[3], KEYS[2] end
  if in_use >= cap - reserve then first, second = KEYS[2], nil end
  local pick = redis.call('ZRANGE', first, 0, 0)
  local lane = first
  if #pick == 0 and second then pick = redis.call('ZRANGE', second, 0, 0); lane = second end
  if #pick == 0 then break end
  local run = pick[1]
  redis.call('ZREM', lane, run)
  local expiry = now + tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], expiry, run)
  redis.call('ZADD', KEYS[7 + best], expiry, run)
  redis.call('HSET', KEYS[4], run, best - 1)
  redis.call('ZADD', KEYS[5], now, run)
  table.insert(granted, run)
  table.insert(granted, best - 1)
end
return granted
"""

# Give back a run's slot. KEYS: service slots, owner hash, endpoint slots 0..n-1. ARGV: run id
# Returns 1 if the run held a slot, 0 if not (released before).
RELEASE = """
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return held
"""

# Extend a run's lease if it still holds its slot. KEYS: service slots, endpoint slots.
# ARGV: run id, new expiry ms. Returns 1 when renewed, 0 when the slot is no longer held.
RENEW = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# Keep the slot of a run whose BES job is running: renew its lease, or take the slot back if
# the lease ran out (the job still counts against the caps, even above them for a while).
# KEYS: service slots, endpoint slots, owner hash. ARGV: run id, new expiry ms, endpoint.
# Returns 0 when renewed, 1 when taken back.
HOLD = """
local held = redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= false
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
if held then return 0 end
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

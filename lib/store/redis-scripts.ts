/**
 * Lua run inside Redis. These mirror lib/core/keys.ts: the entry key is
 * `entryPrefix .. sha1hex(key1 .. '=' .. v1 .. '\n' .. … .. requestKey)`; the
 * store contract suite checks that both sides derive the same key.
 *
 * A missing version is seeded from the server clock in microseconds
 * (seconds .. zero-padded microseconds, about 2^50.7 today, exact in Lua's
 * doubles and in JS), never 0 or 1. A key that was lost is reseeded above every
 * value it held, unless it had been bumped more than once per microsecond on
 * average since it was first seeded. TIME is allowed in scripts since Redis 5
 * (effects replication).
 */
const SEED = `
local function seed()
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', tonumber(t[2]))
end
`

/**
 * Single node: one round trip. KEYS: the version keys. ARGV: request key,
 * entry prefix. Returns { entryKey, entry or nil, version1, version2, … }.
 * The entry key is derived here, so it is not in KEYS: this script is for a
 * single node only (the Cluster path uses VERSION_SCRIPT and a plain GET).
 */
export const LOOKUP_SCRIPT = `${SEED}
local material = ''
local out = { '', false }
local fresh
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    fresh = fresh or seed()
    v = fresh
    redis.call('SET', KEYS[i], v)
  end
  out[i + 2] = v
  material = material .. KEYS[i] .. '=' .. v .. '\\n'
end
local key = ARGV[2] .. redis.sha1hex(material .. ARGV[1])
out[1] = key
out[2] = redis.call('GET', key)
return out
`

/** One version key (Cluster: each key is read in its own slot). Returns the version. */
export const VERSION_SCRIPT = `${SEED}
local v = redis.call('GET', KEYS[1])
if not v then
  v = seed()
  redis.call('SET', KEYS[1], v)
end
return v
`

/** Bumps every key: INCR on a seeded key (seeded first when missing). */
export const BUMP_SCRIPT = `${SEED}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('SET', KEYS[i], seed())
  end
  redis.call('INCR', KEYS[i])
end
return #KEYS
`

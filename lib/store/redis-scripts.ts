/**
 * Lua run inside Redis, only off the hit path: seeding missing versions (on a
 * lookup's second round trip) and bumps. A hit is a plain MGET (README "Redis").
 * Every key a script touches is in KEYS, so an ioredis `keyPrefix` applies
 * and a Cluster routes it (the Cluster path sends one key per script).
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
 * Seeds every missing key and reads every key. Returns { created, v1, v2, … }:
 * `created` counts the keys this call seeded (when it is above 0, no entry can
 * exist under these versions yet, since a fresh version was never used).
 */
export const SEED_SCRIPT = `${SEED}
local out = { 0 }
local fresh
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    fresh = fresh or seed()
    v = fresh
    redis.call('SET', KEYS[i], v)
    out[1] = out[1] + 1
  end
  out[i + 1] = v
end
return out
`

/**
 * Bumps version keys: INCR on a seeded key (seeded first when missing).
 * ARGV: n, graceMs, bumpedAt, until. KEYS: the n version keys, then either
 * nothing (a Cluster sends one key per script) or the n grace record keys:
 * a soft bump (graceMs > 0) writes each key's record `from to bumpedAt until`
 * with PX graceMs, a hard bump deletes it (only when there is one: a plain hard
 * bump writes nothing more than before), in the same atomic step as the INCR.
 * Returns the new versions (integers: exact below 2^53, where a µs seed stays
 * for centuries; Lua's tostring would print them in exponent form).
 */
export const BUMP_SCRIPT = `${SEED}
local n = tonumber(ARGV[1])
local grace = tonumber(ARGV[2])
local out = {}
for i = 1, n do
  local from = redis.call('GET', KEYS[i])
  if not from then
    redis.call('SET', KEYS[i], seed())
  end
  out[i] = redis.call('INCR', KEYS[i])
  if #KEYS > n then
    if grace > 0 and from then
      redis.call('SET', KEYS[n + i], from .. ' ' .. redis.call('GET', KEYS[i]) .. ' ' .. ARGV[3] .. ' ' .. ARGV[4], 'PX', grace)
    elseif redis.call('EXISTS', KEYS[n + i]) == 1 then
      redis.call('DEL', KEYS[n + i])
    end
  end
end
return out
`

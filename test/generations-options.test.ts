import t from 'tap'
import { Generations, graceOf } from '../lib/core/generations.js'
import { MemoryStore } from '../lib/index.js'
import { FaultyStore } from './helpers/faulty-store.js'

/**
 * The engine's options (lib/core/generations.ts): what is refused, with a
 * message naming the option and the value given, and what is accepted.
 */

const invalid = (message: string) => ({ code: 'GC_INVALID_OPTION', message })

t.test('prefix: a non-empty string without whitespace or "=", not ending in ":"', async (t) => {
  const rule = 'option prefix must be a non-empty string without whitespace or "=" and not ending in ":", got'
  for (const prefix of ['', 'a b', 'a\tb', 'a=b', 'gc:', 5]) {
    t.throws(() => new Generations({ prefix: prefix as string }), invalid(`${rule} ${JSON.stringify(prefix)}`), `refused: ${JSON.stringify(prefix)}`)
  }
  for (const prefix of ['a:b', 'app-1', 'x']) {
    const gens = new Generations({ prefix })
    t.equal(gens.epochKey.startsWith(`${prefix}:`), true, `accepted: ${prefix}`)
  }
})

t.test('ttl, timeout and faultLogInterval: positive numbers; maxPendingBumps: a positive integer', async (t) => {
  for (const name of ['ttl', 'timeout', 'faultLogInterval'] as const) {
    for (const bad of [0, -1, Infinity, '1']) {
      t.throws(() => new Generations({ [name]: bad as number }), invalid(`option ${name} must be a positive number, got ${JSON.stringify(bad) ?? String(bad)}`))
    }
    t.throws(() => new Generations({ [name]: Number.NaN }), { code: 'GC_INVALID_OPTION' }, `${name}: NaN`)
    t.equal(new Generations({ [name]: 0.5 })[name === 'faultLogInterval' ? 'ttl' : name], name === 'faultLogInterval' ? 60 : 0.5, `${name}: 0.5 is accepted`)
  }
  const defaults = new Generations()
  t.same([defaults.prefix, defaults.ttl, defaults.timeout, defaults.maxPendingBumps], ['gc', 60, 250, 10_000], 'the documented defaults')
  for (const bad of [0, -3, 2.5, Infinity, '10']) {
    t.throws(() => new Generations({ maxPendingBumps: bad as number }), invalid(`option maxPendingBumps must be a positive integer, got ${JSON.stringify(bad) ?? String(bad)}`))
  }
  t.equal(new Generations({ maxPendingBumps: 1 }).maxPendingBumps, 1)
})

t.test('breaker: an object or false (a store that is not in-process has one)', async (t) => {
  for (const breaker of [null, 'on', 3, true]) {
    t.throws(() => new Generations({ store: new FaultyStore(new MemoryStore()), breaker: breaker as never }), invalid(`option breaker must be an object or false, got ${JSON.stringify(breaker)}`))
  }
})

t.test('grace: a number of seconds, 0 or more', async (t) => {
  t.equal(graceOf(undefined), 0)
  t.equal(graceOf({}), 0)
  t.equal(graceOf({ grace: 0 }), 0)
  t.equal(graceOf({ grace: 2.5 }), 2.5)
  for (const grace of [-1, Number.NaN, Infinity, '5']) {
    t.throws(() => graceOf({ grace: grace as number }), invalid(`bump: option grace must be a number of seconds (0 or more), got ${String(grace)}`))
  }
})

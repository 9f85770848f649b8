import t from 'tap'
import { GenerationalCache, MemoryStore } from '../lib/index.js'
import { FaultyStore } from './helpers/faulty-store.js'

/**
 * A bump that cannot reach the store is retried (lib/core/generations.ts):
 * soon at first, then less and less often while the store stays down, never
 * less often than every 5 s, and soon again after the store came back.
 */

const silent = { warn() {}, error() {}, info() {} }

/** Lets promise chains run (setImmediate is mocked under t.clock). */
async function tick(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve()
}

t.test('a store that stays down is retried after 50 ms, then a doubling delay up to 5 s; once a retry lands, the next failure is retried after 50 ms again', async (t) => {
  t.clock.enter()
  t.teardown(() => t.clock.exit())
  const faulty = new FaultyStore(new MemoryStore())
  const cache = new GenerationalCache({ store: faulty, logger: silent, breaker: false })
  const start = Date.now()
  const calls: number[] = []
  const bump = faulty.bump.bind(faulty)
  faulty.bump = (keys) => {
    calls.push(Date.now() - start)
    return bump(keys)
  }
  const run = async (ms: number) => {
    for (let i = 0; i < ms / 10; i++) {
      t.clock.advance(10)
      await tick()
    }
  }
  faulty.setFault('error')
  t.equal(await cache.bump('g'), false)
  await run(20_000)
  t.same(calls, [0, 50, 150, 350, 750, 1550, 3150, 6350, 11_350, 16_350], 'the bump, then retries 50, 100, 200 … ms apart, at most 5 s')
  faulty.setFault('none')
  await run(5000)
  t.equal(calls.at(-1), 21_350, 'the next retry lands')
  t.equal(cache.getStats().pendingBumps, 0)

  calls.length = 0
  faulty.setFault('error')
  const failedAt = Date.now() - start
  t.equal(await cache.bump('h'), false)
  await run(200)
  t.same(calls, [failedAt, failedAt + 50, failedAt + 150], 'a new outage starts again at 50 ms')
  faulty.setFault('none')
  await run(300)
  t.equal(cache.getStats().pendingBumps, 0)
  await cache.close()
})

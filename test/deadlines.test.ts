import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Deadlines } from '../lib/core/deadlines.js'

t.test('answers within the timeout pass through; one that never answers is rejected', async (t) => {
  const deadlines = new Deadlines(30)
  t.equal(await deadlines.bound(Promise.resolve('value')), 'value')
  await t.rejects(deadlines.bound(Promise.reject(new Error('store error'))), { message: 'store error' })
  await t.rejects(deadlines.bound(new Promise(() => {})), { code: 'GC_STORE_TIMEOUT', message: 'groupcache: store did not answer within 30 ms' })
})

t.test('each call gets its own deadline, in order, whatever was settled before it', async (t) => {
  const deadlines = new Deadlines(40)
  const quick: Promise<number>[] = []
  for (let i = 0; i < 1500; i++) quick.push(deadlines.bound(Promise.resolve(i)))
  t.equal((await Promise.all(quick)).length, 1500)
  const hung = deadlines.bound(new Promise(() => {}))
  await new Promise((resolve) => setTimeout(resolve, 20))
  let late: (v: string) => void = () => {}
  const slow = deadlines.bound(new Promise<string>((resolve) => (late = resolve)))
  await t.rejects(hung, { code: 'GC_STORE_TIMEOUT' })
  late('in time')
  t.equal(await slow, 'in time', 'a later call keeps its own, later deadline')
  await t.rejects(deadlines.bound(new Promise(() => {})), { code: 'GC_STORE_TIMEOUT' }, 'the queue still works after being compacted')
})

t.test('deadlines are on the monotonic clock: a wall clock stepped back does not postpone them', async (t) => {
  const realNow = Date.now
  t.teardown(() => (Date.now = realNow))
  const deadlines = new Deadlines(30)
  const hung = deadlines.bound(new Promise(() => {}))
  Date.now = () => realNow() - 3_600_000
  const started = performance.now()
  await t.rejects(hung, { code: 'GC_STORE_TIMEOUT' })
  t.ok(performance.now() - started < 1000, 'timed out although the wall clock went back an hour')
})

t.test('each outcome is reported once: success, failure, or the timeout (a late answer after it changes nothing)', async (t) => {
  const outcomes: string[] = []
  const outcome = { succeeded: () => void outcomes.push('ok'), failed: () => void outcomes.push('failed') }
  const deadlines = new Deadlines(20)
  await deadlines.bound(Promise.resolve(1), outcome)
  await t.rejects(deadlines.bound(Promise.reject(new Error('x')), outcome))
  let late: (v: number) => void = () => {}
  const slow = deadlines.bound(new Promise<number>((resolve) => (late = resolve)), outcome)
  await t.rejects(slow, { code: 'GC_STORE_TIMEOUT' })
  late(2)
  let fail: (err: Error) => void = () => {}
  const slowFailure = deadlines.bound(new Promise<number>((_resolve, reject) => (fail = reject)), outcome)
  await t.rejects(slowFailure, { code: 'GC_STORE_TIMEOUT' })
  fail(new Error('late'))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(outcomes, ['ok', 'failed', 'failed', 'failed'])
})

t.test('the result of a settled call is not held until its deadline (every Redis reply would otherwise live for the whole timeout)', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const deadlines = new Deadlines(2000)
  let release: (value: string) => void = () => {}
  // A call still waiting keeps the timer armed and the queue unswept: the settled ones sit in it behind it.
  const first = deadlines.bound(new Promise<string>((resolve) => (release = resolve)))
  const refs = await settleSome(deadlines)
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  t.equal(refs.filter((ref) => ref.deref() !== undefined).length, 0, 'every settled result was collected')
  release('done')
  t.equal(await first, 'done')
})

/** Ten calls answered at once; returns weak references to their results (this frame is gone when they are checked). */
async function settleSome(deadlines: Deadlines): Promise<WeakRef<object>[]> {
  const refs: WeakRef<object>[] = []
  for (let i = 0; i < 10; i++) {
    const result = { reply: Buffer.alloc(1024) }
    refs.push(new WeakRef(result))
    await deadlines.bound(Promise.resolve(result))
  }
  return refs
}

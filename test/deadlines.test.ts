import t from 'tap'
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

import t from 'tap'
import { gate, matrix } from './helpers/matrix.js'
import type { TestApp } from './helpers/apps.js'

const N = 20

/** Sends n identical requests, waits until all of them have missed, then opens the gate their handler waits on. */
async function missTogether(a: TestApp, path: string, n: number, release: { open(): void }) {
  const responses = Array.from({ length: n }, () => a.request('GET', path))
  while (a.api.stats().misses < n) await new Promise((resolve) => setImmediate(resolve))
  release.open()
  return Promise.all(responses)
}

await matrix(t, async (t, { app }) => {
  await t.test(`${N} concurrent cold misses run the handler once`, async (t) => {
    const release = gate()
    let runs = 0
    const a = await app([
      {
        method: 'GET',
        path: '/hot',
        cache: true,
        handler: async () => {
          runs++
          await release.wait
          return { body: `computed ${runs}` }
        }
      }
    ])
    const all = await missTogether(a, '/hot', N, release)
    t.equal(runs, 1)
    t.ok(all.every((r) => r.status === 200 && r.body === 'computed 1'))
    const statuses = all.map((r) => r.headers['cache-status']).sort()
    t.same(statuses, [...Array(N - 1).fill('groupcache; fwd=miss; collapsed'), 'groupcache; fwd=miss; stored'])
    t.equal(a.api.stats().collapsed, N - 1)
  })

  await t.test('a response with Set-Cookie is never shared: each request runs its own handler', async (t) => {
    const release = gate()
    let runs = 0
    const a = await app([
      {
        method: 'GET',
        path: '/login',
        cache: true,
        handler: async () => {
          const mine = ++runs
          await release.wait
          return { body: `session ${mine}`, headers: { 'set-cookie': `sid=${mine}` } }
        }
      }
    ])
    const all = await missTogether(a, '/login', 5, release)
    t.equal(runs, 5)
    for (const r of all) {
      t.equal(r.headers['cache-status'], 'groupcache; fwd=miss; detail=set-cookie')
      t.same(r.headers['set-cookie'], [`sid=${r.body.split(' ')[1]}`], 'each client gets its own cookie only')
    }
    t.equal(new Set(all.map((r) => r.body)).size, 5)
  })

  await t.test('a failed leader lets the waiting requests run their own handlers', async (t) => {
    const release = gate()
    let runs = 0
    const a = await app([
      {
        method: 'GET',
        path: '/flaky',
        cache: true,
        handler: async () => {
          const mine = ++runs
          await release.wait
          return mine === 1 ? { status: 503, body: 'down' } : { body: 'up' }
        }
      }
    ])
    const all = await missTogether(a, '/flaky', 3, release)
    t.same(all.map((r) => r.status).sort(), [200, 200, 503])
    t.equal(runs, 3)
  })
})

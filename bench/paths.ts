/**
 * Microbenchmark of the JavaScript the shared HTTP layer runs for a memory hit
 * and for a miss that is stored (no sockets): `tsx bench/paths.ts`.
 * For profiling (`node --cpu-prof --import tsx bench/paths.ts`), not for the README table.
 */
import { GenerationalCache } from '../lib/index.js'
import { HttpCache } from '../lib/http/http-cache.js'
import { BODY } from './body.js'

const http = new HttpCache(new GenerationalCache(), { ttl: 60, statuses: [200], maxEntryBytes: 1 << 20 })
const route = http.compile({ pattern: '/items', name: 'GET /items', params: [], cacheable: true }, { group: 'items' })
const posts = http.compile({ pattern: '/posts/:id', name: 'GET /posts/:id', params: ['id'], cacheable: true }, { groups: ['post:id', 'posts'] })
const headers = { host: '127.0.0.1:3000', accept: '*/*' }
const request = (url: string, params: Record<string, string> = {}) => ({ method: 'GET', url, headers, params, raw: null })
const responseHeaders = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(BODY.length) }

function report(what: string, n: number, start: bigint): void {
  console.log(`${what}: ${(Number(process.hrtime.bigint() - start) / n).toFixed(0)} ns each`)
}

const first = http.begin(route, request('/items'))
if (first instanceof Promise || first.kind !== 'miss') throw new Error('expected a synchronous miss')
await http.finish(first, 200, responseHeaders, BODY)

for (let id = 1; id <= 100; id++) {
  const miss = http.begin(posts, request(`/posts/${id}`, { id: String(id) }))
  if (miss instanceof Promise || miss.kind !== 'miss') throw new Error('expected a synchronous miss')
  await http.finish(miss, 200, responseHeaders, BODY)
}

let n = 0
for (let round = 0; round < 3; round++) {
  const PARAM_HITS = 300_000
  const start = process.hrtime.bigint()
  for (let i = 0; i < PARAM_HITS; i++) {
    const id = String((i % 100) + 1)
    const answer = http.begin(posts, request(`/posts/${id}`, { id }))
    if (answer instanceof Promise || answer.kind !== 'serve') throw new Error('expected a synchronous hit')
  }
  report(`round ${round + 1} hit, /posts/:id with two groups`, PARAM_HITS, start)
}
for (let round = 0; round < 3; round++) {
  const HITS = 300_000
  let start = process.hrtime.bigint()
  for (let i = 0; i < HITS; i++) {
    const answer = http.begin(route, request('/items'))
    if (answer instanceof Promise || answer.kind !== 'serve') throw new Error('expected a synchronous hit')
  }
  report(`round ${round + 1} hit`, HITS, start)
  const MISSES = 30_000
  start = process.hrtime.bigint()
  for (let i = 0; i < MISSES; i++) {
    const miss = http.begin(route, request(`/items?run=1&n=${++n}`))
    if (miss instanceof Promise || miss.kind !== 'miss') throw new Error('expected a synchronous miss')
    await http.finish(miss, 200, responseHeaders, BODY)
  }
  report(`round ${round + 1} stored miss`, MISSES, start)
}

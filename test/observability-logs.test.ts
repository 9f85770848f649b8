import Fastify from 'fastify'
import t from 'tap'
import groupcache, { MemoryStore, subscribeBumps, subscribeFaults, type BumpMessage, type FaultMessage } from '../lib/index.js'
import { FaultyStore, until } from './helpers/faulty-store.js'

interface LogLine {
  level: number
  msg: string
  reqId?: string
  route?: string
}

t.test('a store fault met by a request is logged through request.log, with its reqId', async (t) => {
  const lines: LogLine[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } } })
  const store = new FaultyStore(new MemoryStore())
  await app.register(groupcache, { store })
  app.get('/posts', { config: { cache: { group: 'posts' } } }, async () => ['a post'])
  t.teardown(() => app.close())
  store.setFault('error')
  const res = await app.inject('/posts')
  t.equal(res.statusCode, 200, 'served uncached')
  const fault = lines.find((line) => /groupcache: store lookup failed/.test(line.msg))
  t.ok(fault, 'the fault was logged')
  t.equal(fault!.reqId, 'req-1', 'by the request\'s logger')
  t.equal(fault!.route, 'GET /posts')
  t.equal(fault!.level, 50, 'at error')
})

t.test('store-level events go to the app logger: a failed bump names its groups, a landed retry is info', async (t) => {
  const lines: (LogLine & { groups?: string[] })[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } } })
  const store = new FaultyStore(new MemoryStore())
  await app.register(groupcache, { store })
  t.teardown(() => app.close())
  const faults: FaultMessage[] = []
  const bumps: BumpMessage[] = []
  t.teardown(subscribeFaults((m) => void faults.push(m)))
  t.teardown(subscribeBumps((m) => void bumps.push(m)))
  store.setFault('error')
  t.equal(await app.groupcache.bump('user:userId', { userId: 42 }), false, 'kept for retry')
  const failed = lines.find((line) => /bump failed/.test(line.msg))
  t.same(failed?.groups, ['user:42'], 'readable group names, not hashed keys')
  t.equal(failed?.reqId, undefined, 'not a request\'s line')
  await until(() => faults.some((f) => f.what === 'retry'), 'a retry to fail')
  t.match(faults.slice(0, 2), [{ what: 'bump', route: undefined, error: { message: 'store is down (test fault)' } }, { what: 'retry' }])
  t.same(bumps, [], 'a bump that did not land is not published')
  store.setFault('none')
  await until(() => lines.some((line) => /pending bumps landed/.test(line.msg)), 'the retry to land')
  t.equal(lines.find((line) => /pending bumps landed/.test(line.msg))!.level, 30, 'a recovery is info, not a warning')
  t.match(bumps, [{ groups: ['user:42'], retried: true, soft: false }], 'published once it landed, as a retry')
})

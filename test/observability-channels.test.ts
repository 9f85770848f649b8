import diagnostics from 'node:diagnostics_channel'
import t from 'tap'
import { GroupcacheError } from '../lib/errors.js'
import {
  CHANNELS,
  answerLookup,
  errorCode,
  failLookup,
  lookupChannel,
  publishBreaker,
  publishBump,
  publishFault,
  publishNotStored,
  publishStored,
  startLookup,
  subscribeBreaker,
  subscribeBumps,
  subscribeFaults,
  subscribeLookups,
  subscribeStores,
  suspendLookup,
  type LookupContext
} from '../lib/observability/channels.js'

/** Records every event of the lookup trace, in order, with a copy of the context at that moment. */
function recordLookups(): { events: [string, LookupContext][]; answered: LookupContext[]; stop(): void } {
  const events: [string, LookupContext][] = []
  const answered: LookupContext[] = []
  const on = (name: string) => (context: LookupContext) => void events.push([name, { ...context }])
  const stop = subscribeLookups({
    start: on('start'),
    end: on('end'),
    asyncStart: on('asyncStart'),
    asyncEnd: on('asyncEnd'),
    error: on('error'),
    answered: (context) => void answered.push(context)
  })
  return { events, answered, stop }
}

t.test('channel names are the documented ones, and the lookup trace follows the tracing-channel naming', async (t) => {
  t.same(CHANNELS, { lookup: 'groupcache:lookup', store: 'groupcache:store', bump: 'groupcache:bump', fault: 'groupcache:fault', breaker: 'groupcache:breaker' })
  t.equal(lookupChannel.start.name, 'tracing:groupcache:lookup:start')
  t.equal(lookupChannel.asyncEnd.name, 'tracing:groupcache:lookup:asyncEnd')
})

t.test('nobody subscribed: the guard is false and the helpers publish nothing', async (t) => {
  t.equal(lookupChannel.hasSubscribers, false)
  const { stop, events } = recordLookups()
  t.equal(lookupChannel.hasSubscribers, true)
  stop()
  t.equal(lookupChannel.hasSubscribers, false, 'unsubscribing turns the guard off again')
  // Helpers given no context (the call site skipped startLookup) are no-ops.
  answerLookup(undefined, 'hit')
  suspendLookup(undefined)
  failLookup(undefined, new Error('x'))
  t.same(events, [])

  // Raw subscribers see nothing from the plain helpers once unsubscribed.
  const seen: unknown[] = []
  const stops = [subscribeStores((m) => seen.push(m)), subscribeBumps((m) => seen.push(m)), subscribeFaults((m) => seen.push(m)), subscribeBreaker((m) => seen.push(m))]
  for (const s of stops) s()
  for (const name of Object.values(CHANNELS).slice(1)) t.equal(diagnostics.hasSubscribers(name), false, name)
  publishStored('gc', 'GET /a', 10, 60)
  publishNotStored('gc', 'GET /a', 'status')
  publishBump('gc', ['k'], ['posts'], false, false)
  publishFault('gc', 'lookup', 'GET /a', new Error('down'))
  publishBreaker('gc', 'closed', 'open')
  t.same(seen, [])
})

t.test('a synchronous lookup publishes start then end, with its outcome and duration at end', async (t) => {
  const { events, answered, stop } = recordLookups()
  t.teardown(stop)
  const context = startLookup('gc', 'memory', 'GET /users/:userId', 'GET', '/users/1', ['user:1'])
  t.same(events.map(([name]) => name), ['start'])
  t.equal(events[0]![1].outcome, undefined, 'no outcome at start')
  answerLookup(context, 'hit', 'groupcache; hit; ttl=59')
  t.same(events.map(([name]) => name), ['start', 'end'])
  const end = events[1]![1]
  t.match(end, { prefix: 'gc', store: 'memory', route: 'GET /users/:userId', method: 'GET', url: '/users/1', groups: ['user:1'], async: false, outcome: 'hit', cacheStatus: 'groupcache; hit; ttl=59', detail: undefined })
  t.type(end.duration, 'number')
  t.ok(end.duration! >= 0)
  t.same(answered, [context], 'answered once, with the same context object')
})

t.test('an asynchronous lookup: end without outcome, then asyncStart and asyncEnd with it; a store error comes first', async (t) => {
  const { events, answered, stop } = recordLookups()
  t.teardown(stop)
  const context = startLookup('gc', 'redis', 'GET /posts', 'GET', '/posts', ['posts'])
  suspendLookup(context)
  suspendLookup(context)
  t.equal(events.length, 2, 'suspending twice publishes end once')
  t.equal(events[1]![0], 'end')
  t.equal(events[1]![1].async, true)
  t.equal(events[1]![1].outcome, undefined)
  t.equal(events[1]![1].duration, undefined)
  t.same(answered, [], 'not answered at end of the synchronous part')
  const err = new GroupcacheError('GC_STORE_TIMEOUT', 'slow')
  failLookup(context, err)
  answerLookup(context, 'bypass', 'groupcache; fwd=bypass; detail=store-timeout', 'store-timeout')
  t.same(events.map(([name]) => name), ['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
  t.equal(events[2]![1].error, err)
  t.match(events[4]![1], { async: true, outcome: 'bypass', detail: 'store-timeout', cacheStatus: 'groupcache; fwd=bypass; detail=store-timeout' })
  t.same(answered, [context], 'answered once, at asyncEnd')
})

t.test('subscribeLookups with only some handlers subscribes only those channels', async (t) => {
  const answered: string[] = []
  const stop = subscribeLookups({ answered: (c) => void answered.push(c.outcome!) })
  t.equal(lookupChannel.start.hasSubscribers, false)
  t.equal(lookupChannel.end.hasSubscribers, true)
  t.equal(lookupChannel.asyncEnd.hasSubscribers, true)
  t.equal(lookupChannel.hasSubscribers, true, 'the one guard call sites use sees an answered-only subscriber')
  answerLookup(startLookup('gc', 'memory', 'GET /a', 'GET', '/a', []), 'miss')
  stop()
  t.equal(lookupChannel.hasSubscribers, false)
  t.same(answered, ['miss'])

  const starts: string[] = []
  const stopStarts = subscribeLookups({ start: (c) => void starts.push(c.url) })
  t.equal(lookupChannel.end.hasSubscribers, false, 'no answered handler: end is not subscribed')
  answerLookup(startLookup('gc', 'memory', 'GET /b', 'GET', '/b', []), 'hit')
  stopStarts()
  t.same(starts, ['/b'])
})

t.test('store, bump, fault and breaker messages carry what the docs say', async (t) => {
  const stores: unknown[] = []
  const bumps: unknown[] = []
  const faults: unknown[] = []
  const breaker: unknown[] = []
  const stops = [subscribeStores((m) => stores.push(m)), subscribeBumps((m) => bumps.push(m)), subscribeFaults((m) => faults.push(m)), subscribeBreaker((m) => breaker.push(m))]
  t.teardown(() => stops.forEach((s) => s()))

  publishStored('gc', 'GET /a', 123, 60)
  publishNotStored('gc', 'GET /a', 'set-cookie')
  t.same(stores, [
    { prefix: 'gc', route: 'GET /a', stored: true, bytes: 123, ttl: 60 },
    { prefix: 'gc', route: 'GET /a', stored: false, reason: 'set-cookie' }
  ])

  publishBump('gc', ['gc:v:1', 'gc:epoch'], ['user:42', '*'], false, true)
  t.same(bumps, [{ prefix: 'gc', keys: ['gc:v:1', 'gc:epoch'], groups: ['user:42', '*'], soft: false, retried: true }])

  const timeout = new GroupcacheError('GC_STORE_TIMEOUT', 'slow')
  publishFault('gc', 'lookup', 'GET /a', timeout)
  publishFault('gc', 'bump', undefined, new Error('plain'))
  t.match(faults, [
    { prefix: 'gc', what: 'lookup', route: 'GET /a', code: 'GC_STORE_TIMEOUT', error: timeout },
    { prefix: 'gc', what: 'bump', route: undefined, code: undefined }
  ])

  publishBreaker('gc', 'closed', 'open')
  publishBreaker('gc', 'open', 'open')
  publishBreaker('gc', 'open', 'half-open')
  t.same(breaker, [
    { prefix: 'gc', from: 'closed', to: 'open' },
    { prefix: 'gc', from: 'open', to: 'half-open' }
  ], 'a non-change is not published')
})

t.test('errorCode reads string codes only', async (t) => {
  t.equal(errorCode(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })), 'ECONNREFUSED')
  t.equal(errorCode(Object.assign(new Error('numeric'), { code: 5 })), undefined)
  t.equal(errorCode('a string'), undefined)
  t.equal(errorCode(null), undefined)
})

t.test('unsubscribing twice is harmless', async (t) => {
  const stop = subscribeStores(() => {})
  stop()
  stop()
  t.equal(diagnostics.hasSubscribers(CHANNELS.store), false)
})

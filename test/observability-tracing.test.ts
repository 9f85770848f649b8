import { INVALID_SPAN_CONTEXT, SpanStatusCode, type Attributes, type Exception, type Span, type SpanAttributeValue, type SpanOptions, type SpanStatus, type Tracer } from '@opentelemetry/api'
import t from 'tap'
import { buildApp } from '../example-app/app.js'
import { traceLookups } from '../example-app/tracing.js'
import { MemoryStore, subscribeLookups, type LookupResult, type Store } from '../lib/index.js'
import { FaultyStore, until } from './helpers/faulty-store.js'

/** A span that keeps what it was given: the OpenTelemetry API's Span interface, recording. */
class RecordingSpan implements Span {
  readonly attributes: Attributes
  readonly exceptions: Exception[] = []
  status: SpanStatus | undefined
  ended = false
  constructor(readonly name: string, options: SpanOptions | undefined) {
    this.attributes = { ...options?.attributes }
  }
  spanContext() {
    return INVALID_SPAN_CONTEXT
  }
  setAttribute(key: string, value: SpanAttributeValue): this {
    this.attributes[key] = value
    return this
  }
  setAttributes(attributes: Attributes): this {
    Object.assign(this.attributes, attributes)
    return this
  }
  addEvent(): this {
    return this
  }
  addLink(): this {
    return this
  }
  addLinks(): this {
    return this
  }
  setStatus(status: SpanStatus): this {
    this.status = status
    return this
  }
  updateName(): this {
    return this
  }
  end(): void {
    this.ended = true
  }
  isRecording(): boolean {
    return !this.ended
  }
  recordException(exception: Exception): void {
    this.exceptions.push(exception)
  }
}

class RecordingTracer implements Tracer {
  readonly spans: RecordingSpan[] = []
  startSpan(name: string, options?: SpanOptions): RecordingSpan {
    const span = new RecordingSpan(name, options)
    this.spans.push(span)
    return span
  }
  startActiveSpan(): never {
    throw new Error('groupcache\'s subscriber starts spans with startSpan')
  }
}

t.test('the example tracer makes one ended span per lookup, with route, groups, outcome and Cache-Status', async (t) => {
  const tracer = new RecordingTracer()
  const detach = traceLookups(tracer)
  t.teardown(detach)
  const app = await buildApp()
  t.teardown(() => app.close())
  await app.inject('/users/1')
  const hit = await app.inject('/users/1')
  await app.inject({ url: '/users/1', headers: { authorization: 'Bearer x' } })
  t.equal(tracer.spans.length, 3)
  for (const span of tracer.spans) {
    t.equal(span.name, 'groupcache lookup GET /users/:userId')
    t.match(span.attributes, { 'groupcache.route': 'GET /users/:userId', 'groupcache.store': 'memory', 'groupcache.groups': ['user:1'], 'http.request.method': 'GET' })
    t.equal(span.ended, true)
  }
  const [miss, hitSpan, bypass] = tracer.spans
  t.equal(miss!.attributes['groupcache.outcome'], 'miss')
  t.notOk('groupcache.cache_status' in miss!.attributes, 'a miss\'s Cache-Status is decided after the lookup')
  t.same([hitSpan!.attributes['groupcache.outcome'], hitSpan!.attributes['groupcache.cache_status']], ['hit', hit.headers['cache-status']])
  t.match(bypass!.attributes, { 'groupcache.outcome': 'bypass', 'groupcache.detail': 'authorization' })
  t.equal(bypass!.status, undefined, 'a bypass by policy is no error')
})

t.test('a store fault marks the span as an error and records the exception', async (t) => {
  const tracer = new RecordingTracer()
  t.teardown(traceLookups(tracer))
  const store = new FaultyStore(new MemoryStore())
  const app = await buildApp({ store })
  t.teardown(() => app.close())
  store.setFault('error')
  t.equal((await app.inject('/posts')).statusCode, 200)
  const [span] = tracer.spans
  t.match(span, { ended: true, status: { code: SpanStatusCode.ERROR }, attributes: { 'groupcache.outcome': 'bypass', 'groupcache.detail': 'store-error' } })
  t.match(span!.exceptions, [{ message: 'store is down (test fault)' }])
})

t.test('a store rejecting with something not an Error still gets it recorded', async (t) => {
  const tracer = new RecordingTracer()
  t.teardown(traceLookups(tracer))
  const store: Store = {
    lookup: (): Promise<LookupResult> => Promise.reject('the store said no'),
    set: async () => {},
    delete: async () => {},
    bump: async () => {},
    close: async () => {}
  }
  const app = await buildApp({ store })
  t.teardown(() => app.close())
  t.equal((await app.inject('/posts')).statusCode, 200)
  t.same(tracer.spans[0]!.exceptions, ['the store said no'])
})

t.test('a lookup already under way when the tracer attaches gets no span, and breaks nothing', async (t) => {
  const started: string[] = []
  t.teardown(subscribeLookups({ start: (lookup) => void started.push(lookup.url) }))
  const store = new FaultyStore(new MemoryStore())
  const app = await buildApp({ store })
  t.teardown(() => app.close())
  store.setFault('hang')
  const pending = app.inject('/posts')
  await until(() => started.length === 1, 'the lookup to start')
  const tracer = new RecordingTracer()
  t.teardown(traceLookups(tracer))
  store.setFault('none')
  t.equal((await pending).statusCode, 200)
  t.same(tracer.spans, [])
  await app.inject('/posts')
  t.equal(tracer.spans.length, 1, 'the next lookup is traced')
})

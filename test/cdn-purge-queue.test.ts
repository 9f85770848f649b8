import t from 'tap'
import { PurgeError, PurgeQueue } from '../lib/cdn/purge-queue.js'

/** Lets promise chains run (setImmediate is mocked under t.clock). */
async function tick(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve()
}

function recordingLogger() {
  const lines: { level: string; obj: unknown; msg: string | undefined }[] = []
  return {
    lines,
    warn: (obj: unknown, msg?: string) => void lines.push({ level: 'warn', obj, msg }),
    error: (obj: unknown, msg?: string) => void lines.push({ level: 'error', obj, msg })
  }
}

/** A send that records batches and fails as told. */
function sender(failures: unknown[] = []) {
  const batches: string[][] = []
  const send = async (keys: string[]): Promise<void> => {
    batches.push(keys)
    const failure = failures.shift()
    if (failure !== undefined) throw failure
  }
  return { batches, send }
}

t.test('keys of one window go out together, deduplicated, in batches of at most batchSize', async (t) => {
  t.clock.enter()
  const { batches, send } = sender()
  const queue = new PurgeQueue('test', send, 3, 'gc', { windowMs: 20, logger: recordingLogger() })
  let resolved = 0
  void queue.enqueue(['a', 'b']).then(() => resolved++)
  void queue.enqueue(['b', 'c', 'd', 'e']).then(() => resolved++)
  t.equal(queue.pending, 5)
  t.clock.advance(19)
  await tick()
  t.same(batches, [], 'nothing sent before the window closes')
  t.clock.advance(1)
  await tick()
  t.same(batches, [['a', 'b', 'c'], ['d', 'e']])
  t.equal(resolved, 2, 'every enqueue resolved once its keys were sent')
  void queue.enqueue(['f'])
  t.clock.advance(20)
  await tick()
  t.same(batches[2], ['f'], 'the next window is a new purge')
})

t.test('a failed batch is retried with exponential backoff, and only that batch', async (t) => {
  t.clock.enter()
  const logger = recordingLogger()
  const { batches, send } = sender([new PurgeError('HTTP 503', { status: 503, retryable: true }), new Error('socket hang up')])
  const queue = new PurgeQueue('test', send, 10, 'gc', { windowMs: 10, backoffMs: 100, logger })
  let done = false
  void queue.enqueue(['k1']).then(() => (done = true))
  t.clock.advance(10)
  await tick()
  t.equal(batches.length, 1)
  // First retry delay: between 50 and 100 ms.
  t.clock.advance(49)
  await tick()
  t.equal(batches.length, 1, 'not before half the first delay')
  t.clock.advance(51)
  await tick()
  t.equal(batches.length, 2, 'retried within the first delay')
  // Second delay: between 100 and 200 ms.
  t.clock.advance(99)
  await tick()
  t.equal(batches.length, 2, 'the delay doubled')
  t.clock.advance(101)
  await tick()
  t.equal(batches.length, 3)
  t.ok(done, 'resolved once it landed')
  t.same(logger.lines.map((l) => l.level), ['warn', 'warn'], 'one warning when it first failed, one when it landed')
  t.match(logger.lines[1]?.obj, { attempts: 3 })
})

t.test('gives up after `retries`, logging one error; a refusal (4xx) is not retried', async (t) => {
  t.clock.enter()
  const logger = recordingLogger()
  const always = Array.from({ length: 10 }, () => new PurgeError('HTTP 500', { status: 500, retryable: true }))
  const { batches, send } = sender(always)
  const queue = new PurgeQueue('test', send, 10, 'gc', { windowMs: 0, retries: 2, backoffMs: 10, logger })
  let done = false
  void queue.enqueue(['k']).then(() => (done = true))
  for (let i = 0; i < 10; i++) {
    t.clock.advance(100)
    await tick()
  }
  t.equal(batches.length, 3, 'the first attempt and 2 retries')
  t.ok(done, 'resolved, not rejected')
  t.same(logger.lines.map((l) => l.level), ['warn', 'error'])
  t.match(logger.lines[1]?.msg, /failed after 3 attempt\(s\); given up/)

  const refused = sender([new PurgeError('HTTP 400', { status: 400, retryable: false })])
  const logger2 = recordingLogger()
  const queue2 = new PurgeQueue('test', refused.send, 10, 'gc', { windowMs: 0, retries: 0, logger: logger2 })
  void queue2.enqueue(['k'])
  t.clock.advance(1)
  await tick()
  t.clock.advance(60_000)
  await tick()
  t.equal(refused.batches.length, 1, 'a refusal is never sent again')
  t.same(logger2.lines.map((l) => l.level), ['error'])
})

t.test("a vendor's Retry-After is honoured when longer than the backoff", async (t) => {
  t.clock.enter()
  const { batches, send } = sender([new PurgeError('HTTP 429', { status: 429, retryable: true, retryAfterMs: 2000 })])
  const queue = new PurgeQueue('test', send, 10, 'gc', { windowMs: 0, backoffMs: 10, logger: recordingLogger() })
  void queue.enqueue(['k'])
  t.clock.advance(1)
  await tick()
  t.clock.advance(1998)
  await tick()
  t.equal(batches.length, 1, 'still waiting for Retry-After')
  t.clock.advance(2)
  await tick()
  t.equal(batches.length, 2)
})

t.test('bounded: past maxPending keys, the queue purges the deployment key instead', async (t) => {
  t.clock.enter()
  const logger = recordingLogger()
  const { batches, send } = sender()
  const queue = new PurgeQueue('test', send, 100, 'gc', { windowMs: 10, maxPending: 4, logger })
  void queue.enqueue(['a', 'b', 'c'])
  void queue.enqueue(['d', 'e'])
  t.equal(queue.pending, 1)
  void queue.enqueue(['f'])
  t.clock.advance(10)
  await tick()
  t.same(batches, [['gc', 'f']], 'everything purged; nothing missed')
  t.equal(logger.lines.length, 1)
  t.match(logger.lines[0]?.msg, /queue full; purging the deployment key/)
})

t.test('idle() flushes at once and waits; close() stops retry waits; enqueue after close is a no-op', async (t) => {
  t.clock.enter()
  const logger = recordingLogger()
  const { batches, send } = sender([new Error('down')])
  const queue = new PurgeQueue('test', send, 10, 'gc', { windowMs: 1000, backoffMs: 60_000, logger })
  void queue.enqueue(['x'])
  const idle = queue.idle()
  await tick()
  t.same(batches, [['x']], 'idle() did not wait for the window')
  let idled = false
  void idle.then(() => (idled = true))
  await tick()
  t.notOk(idled, 'idle() waits for the retry')
  await queue.close()
  t.equal(batches.length, 2, 'close() woke the retry, which ran once more')
  t.ok(idled)
  await queue.enqueue(['y'])
  t.equal(batches.length, 2, 'closed: nothing more is sent')
  t.equal(queue.pending, 0)
})

t.test('a CDN outage is a few log lines with counts, not one per purge', async (t) => {
  t.clock.enter()
  const logger = recordingLogger()
  const down = Array.from({ length: 100 }, () => new PurgeError('HTTP 400', { status: 400, retryable: false }))
  const { batches, send } = sender(down)
  const queue = new PurgeQueue('test', send, 10, 'gc', { windowMs: 10, logger })
  for (let i = 0; i < 20; i++) {
    void queue.enqueue([`k${i}`])
    t.clock.advance(10)
    await tick()
  }
  t.equal(batches.length, 20, 'every window was sent')
  t.equal(logger.lines.length, 1, 'one line for the first 20 failures')
  t.clock.advance(10_000)
  void queue.enqueue(['later'])
  t.clock.advance(10)
  await tick()
  t.equal(logger.lines.length, 2)
  t.match(logger.lines[1], { level: 'error', obj: { suppressed: 19, vendor: 'test' } }, 'the next line counts those not logged')
})

t.test('bounded in flight: while 4 windows are still being sent, later keys wait and merge', async (t) => {
  t.clock.enter()
  const batches: string[][] = []
  const release: (() => void)[] = []
  const send = (keys: string[]): Promise<void> => {
    batches.push(keys)
    return new Promise((resolve) => release.push(resolve))
  }
  const queue = new PurgeQueue('test', send, 100, 'gc', { windowMs: 10, logger: recordingLogger() })
  for (let i = 0; i < 7; i++) {
    void queue.enqueue([`k${i}`])
    t.clock.advance(10)
    await tick()
  }
  t.same(batches, [['k0'], ['k1'], ['k2'], ['k3']], 'four requests in flight, no more')
  t.equal(queue.pending, 3, 'the rest is gathered')
  for (const done of release.splice(0)) done()
  await tick()
  t.clock.advance(10)
  await tick()
  t.same(batches.at(-1), ['k4', 'k5', 'k6'], 'sent together once there was room')
  for (const done of release.splice(0)) done()
  await queue.idle()
})

t.test('an empty enqueue resolves too', async (t) => {
  const { batches, send } = sender()
  const queue = new PurgeQueue('test', send, 10, 'gc', { windowMs: 1 })
  await queue.enqueue([])
  t.same(batches, [], 'nothing sent')
  await queue.close()
})

t.test('options are checked', async (t) => {
  const send = async (): Promise<void> => {}
  t.throws(() => new PurgeQueue('fastly', send, 1, 'gc', { windowMs: -1 }), { code: 'GC_INVALID_OPTION', message: /fastly purger: option windowMs/ })
  t.throws(() => new PurgeQueue('fastly', send, 1, 'gc', { retries: Number.NaN }), { message: /option retries/ })
  t.throws(() => new PurgeQueue('fastly', send, 1, 'gc', { backoffMs: 0 }), { message: /option backoffMs/ })
  t.throws(() => new PurgeQueue('fastly', send, 1, 'gc', { maxPending: 0 }), { message: /option maxPending/ })
})

t.test('without a logger, failures go to console', async (t) => {
  const errors: unknown[][] = []
  const warns: unknown[][] = []
  const origError = console.error
  const origWarn = console.warn
  console.error = (...args: unknown[]) => void errors.push(args)
  console.warn = (...args: unknown[]) => void warns.push(args)
  t.teardown(() => {
    console.error = origError
    console.warn = origWarn
  })
  const { send } = sender([new Error('once'), new PurgeError('no', { retryable: false })])
  const queue = new PurgeQueue('test', send, 10, 'gc', { windowMs: 0, backoffMs: 1 })
  await queue.enqueue(['k'])
  t.equal(warns.length, 1)
  t.equal(errors.length, 1)
  const full = new PurgeQueue('test', send, 10, 'gc', { windowMs: 0, maxPending: 1 })
  await full.enqueue(['a', 'b'])
  t.equal(warns.length, 2)
})

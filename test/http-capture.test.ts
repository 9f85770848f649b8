import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { holdUntilDecided, STREAMED, type Outgoing, type RawResponse } from '../lib/http/capture.js'
import { request } from './helpers/http.js'

type Decide = (out: Outgoing) => Promise<Record<string, string>> | Record<string, string>

/** A real HTTP server whose handler holds its response with `decide`, then writes it with `write`. */
async function serverWith(collectBytes: number, decide: Decide, write: (res: ServerResponse) => void) {
  const seen: Outgoing[] = []
  const server = createServer((_req, res) => {
    holdUntilDecided(res as unknown as RawResponse, collectBytes, (out) => {
      seen.push(out)
      return decide(out)
    })
    write(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { seen, get: () => request(base, 'GET', '/') }
}

t.test('writeHead with a reason and a flat header array, then end: decided on status, headers and body', async (t) => {
  const { seen, get } = await serverWith(1024, () => ({ 'x-decided': 'yes' }), (res) => {
    res.setHeader('x-set', 'early')
    res.writeHead(203, 'Custom', ['X-Array', 'a', 'Content-Type', 'text/plain'])
    res.end('body text')
  })
  const r = await get()
  t.equal(r.status, 203)
  t.equal(r.body, 'body text')
  t.equal(r.headers['x-decided'], 'yes', 'the decided headers are written')
  t.equal(seen[0]?.status, 203)
  t.match(seen[0]?.headers, { 'x-array': 'a', 'content-type': 'text/plain', 'x-set': 'early' })
  t.equal(seen[0]?.body, 'body text')
})

t.test('a body written in chunks under a declared Content-Length is collected before the decision', async (t) => {
  let callbacks = 0
  const { seen, get } = await serverWith(1024, async () => ({ 'x-decided': 'late' }), (res) => {
    res.writeHead(200, { 'content-length': '11' })
    res.write('hello ', () => callbacks++)
    res.write(Buffer.from('wor'))
    res.end('ld', () => callbacks++)
  })
  const r = await get()
  t.equal(r.body, 'hello world')
  t.equal(r.headers['x-decided'], 'late')
  t.ok(Buffer.isBuffer(seen[0]?.body))
  t.equal(String(seen[0]?.body), 'hello world')
  t.equal(callbacks, 2, 'write and end callbacks are called')
  const plain = await serverWith(1024, () => ({}), (res) => {
    res.writeHead(200, { 'content-length': '4' })
    res.write('ab')
    res.end('cd')
  })
  t.equal((await plain.get()).body, 'abcd', 'an end without a callback')
  t.equal(String(plain.seen[0]?.body), 'abcd')
})

t.test('a body over collectBytes, or with no length, is decided as streamed at its first chunk', async (t) => {
  for (const headers of [{ 'content-length': '2048' }, {}]) {
    const { seen, get } = await serverWith(1024, () => ({ 'x-decided': 'streamed' }), (res) => {
      res.writeHead(200, headers)
      res.write('x'.repeat(1024))
      setImmediate(() => {
        res.write('y'.repeat(headers['content-length'] === undefined ? 10 : 1024))
        res.end()
      })
    })
    const r = await get()
    t.equal(seen[0]?.body, STREAMED)
    t.equal(r.headers['x-decided'], 'streamed')
    t.equal(r.body.length, headers['content-length'] === undefined ? 1034 : 2048, 'every byte went out')
  }
})

t.test('calls made while the decision is pending are queued and written in order', async (t) => {
  let release!: () => void
  const pending = new Promise<void>((resolve) => (release = resolve))
  const { get } = await serverWith(0, async () => {
    await pending
    return {}
  }, (res) => {
    res.write('one ')
    res.write('two ')
    res.end('three')
    setImmediate(release)
  })
  t.equal((await get()).body, 'one two three')
})

t.test('a decision that throws or rejects still lets the response out, unchanged', async (t) => {
  for (const decide of [
    () => {
      throw new Error('decide failed (test)')
    },
    () => Promise.reject(new Error('decide rejected (test)'))
  ] as Decide[]) {
    const { get } = await serverWith(1024, decide, (res) => {
      res.writeHead(201, { 'x-handler': 'kept' })
      res.end('still served')
    })
    const r = await get()
    t.equal(r.status, 201)
    t.equal(r.headers['x-handler'], 'kept')
    t.equal(r.body, 'still served')
  }
})

t.test('end with bytes in another encoding and with a Uint8Array is seen as bytes', async (t) => {
  const { seen, get } = await serverWith(1024, () => ({}), (res) => res.end('aGk=', 'base64'))
  t.equal((await get()).body, 'hi')
  t.same(seen[0]?.body, Buffer.from('hi'))
  const second = await serverWith(1024, () => ({}), (res) => res.end(new Uint8Array([104, 105])))
  t.equal((await second.get()).body, 'hi')
  t.same(second.seen[0]?.body, Buffer.from('hi'))
})

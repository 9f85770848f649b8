import t from 'tap'
import { decodeEntry, EntryDecoder, encodeEntry, makeEntry, mergeVary, storableHeaders } from '../lib/http/entry.js'
import { headerTokens, ifNoneMatchMatches } from '../lib/http/policy.js'
import { ageValue } from '../lib/http/cache-status.js'

t.test('hop-by-hop, per-response and per-client headers are not stored', async (t) => {
  const kept = storableHeaders({
    Connection: 'keep-alive, X-Hop',
    'keep-alive': 'timeout=5',
    'x-hop': 'named by Connection',
    'transfer-encoding': 'chunked',
    te: 'trailers',
    trailer: 'x-sum',
    upgrade: 'h2c',
    'proxy-authenticate': 'Basic',
    date: 'Mon, 01 Jan 2001 00:00:00 GMT',
    'set-cookie': ['a=1'],
    'content-length': 10,
    age: '5',
    'cache-status': 'upstream; hit',
    'Content-Type': 'text/plain',
    'x-many': ['a', 'b'],
    'x-number': 7,
    'x-undefined': undefined
  })
  t.same(kept, { 'content-type': 'text/plain', 'x-many': ['a', 'b'], 'x-number': '7' })
  // Without a Connection header naming them, and with it anywhere in the list.
  t.same(storableHeaders({ 'keep-alive': 'timeout=5', 'proxy-authorization': 'Basic eA==', 'proxy-connection': 'keep-alive', 'x-kept': '1' }), { 'x-kept': '1' })
  t.same(storableHeaders({ 'x-first': 'a', 'x-hop': 'b', connection: 'x-hop' }), { 'x-first': 'a' }, 'the header Connection names is dropped wherever Connection comes')
})

t.test('entries round-trip as bytes, the body unwrapped', async (t) => {
  const body = Buffer.from([0, 1, 2, 255, 254, 0])
  const entry = makeEntry(203, { 'content-type': 'application/octet-stream', 'x-list': ['1', '2'] }, body, 1_700_000_000_000, 5000)
  const bytes = encodeEntry(entry)
  t.ok(bytes.subarray(bytes.length - body.length).equals(body), 'the body is the last bytes, raw')
  const copy = Buffer.from(bytes) // a fresh Buffer, as Redis returns
  const decoder = new EntryDecoder(1024)
  const decoded = decoder.decode(copy)
  t.ok(decoded)
  t.equal(decoded?.status, 203)
  t.same(decoded?.headers, entry.headers)
  t.equal(decoded?.etag, entry.etag)
  t.equal(decoded?.storedAt, 1_700_000_000_000)
  t.equal(decoded?.ttlMs, 5000)
  t.ok(decoded?.body.equals(body))
  t.equal(decoder.decode(copy), decoded, 'the same bytes are decoded once')
  t.not(decodeEntry(copy), decoded, 'decodeEntry alone keeps no memo')
  t.equal(decoder.heldBytes, 0, 'bytes decoded without a key (the memory store hands back the same Buffer) are never copied')
})

t.test('bytes this version cannot read are a miss, not an error', async (t) => {
  t.equal(decodeEntry(Buffer.from('')), undefined)
  t.equal(decodeEntry(Buffer.from([9, 0, 0, 0, 1, 0])), undefined, 'unknown format byte')
  t.equal(decodeEntry(Buffer.from([1, 0, 0, 0, 50, 0])), undefined, 'header longer than the bytes')
  t.equal(decodeEntry(Buffer.from([1, 0, 0, 0, 2, 0x7b, 0x7d])), undefined, 'header is not the expected array')
  t.equal(decodeEntry(Buffer.from([1, 0, 0, 0, 1, 0x7b])), undefined, 'header is not JSON')
  t.equal(decodeEntry(Buffer.from([1, 0, 0])), undefined, 'cut inside the length')
  t.equal(decodeEntry(Buffer.concat([Buffer.from([1, 0, 0, 0, 8]), Buffer.from('[200,{}]x')])), undefined, 'header is an array of another shape')
  const future = encodeEntry(makeEntry(200, {}, Buffer.from('body'), 0, 1))
  future[0] = 2
  t.equal(decodeEntry(future), undefined, 'an entry written in another format, readable as this one but for its format byte')
})

t.test('a handler ETag is kept; otherwise a strong one is computed from the body', async (t) => {
  t.equal(makeEntry(200, { etag: 'W/"v1"' }, Buffer.from('x'), 0, 1).etag, 'W/"v1"')
  const a = makeEntry(200, {}, Buffer.from('same'), 0, 1)
  const b = makeEntry(200, {}, Buffer.from('same'), 5, 1)
  const c = makeEntry(200, {}, Buffer.from('other'), 0, 1)
  t.match(a.etag, /^"[\w-]+"$/)
  t.equal(a.etag, b.etag)
  t.not(a.etag, c.etag)
  const headers = { 'cache-control': 'public', 'content-type': 'x', vary: 'a', 'content-location': '/doc.en', expires: 'Thu, 01 Jan 2032 00:00:00 GMT', 'x-other': 'y' }
  t.same(Object.keys(makeEntry(200, headers, Buffer.from(''), 0, 1).notModifiedHeaders).sort(), ['cache-control', 'content-location', 'etag', 'expires', 'vary'], 'a 304 carries the headers RFC 9110 §15.4.5 lists, and only those')
})

t.test('If-None-Match uses the weak comparison', async (t) => {
  t.ok(ifNoneMatchMatches('"a"', '"a"'))
  t.ok(ifNoneMatchMatches('W/"a"', '"a"'))
  t.ok(ifNoneMatchMatches('"a"', 'W/"a"'))
  t.ok(ifNoneMatchMatches('"x", "a"', '"a"'))
  t.ok(ifNoneMatchMatches(['"x"', '"a"'], '"a"'))
  t.ok(ifNoneMatchMatches('*', '"a"'))
  t.notOk(ifNoneMatchMatches('"b"', '"a"'))
  t.notOk(ifNoneMatchMatches(undefined, '"a"'))
})

t.test('entries read by key (from Redis) are decoded once while their bytes stay the same', async (t) => {
  const decoder = new EntryDecoder(64 * 1024)
  const bytes = encodeEntry(makeEntry(200, { 'content-type': 'text/plain' }, Buffer.from('v1'), 1, 60_000))
  const first = decoder.decode(Buffer.from(bytes), 'gc:e:k1')
  t.equal(decoder.decode(Buffer.from(bytes), 'gc:e:k1'), first, 'fresh Buffers with the same bytes: the same decoded entry')
  const other = encodeEntry(makeEntry(200, { 'content-type': 'text/plain' }, Buffer.from('v2'), 2, 60_000))
  t.equal(decoder.decode(Buffer.from(other), 'gc:e:k1')?.body.toString(), 'v2', 'other bytes under the same key are decoded anew')
  t.equal(decoder.heldBytes, other.length, 'the replaced copy is no longer counted')
  t.equal(decoder.decode(Buffer.from([7, 7]), 'gc:e:k2'), undefined, 'unreadable bytes are a miss')
  t.equal(decoder.heldBytes, other.length, 'and hold nothing')
})

t.test('the decoded-entry memo is bounded by bytes, per decoder, least recently used out first', async (t) => {
  const entryOf = (size: number) => encodeEntry(makeEntry(200, {}, Buffer.alloc(size, 1), 1, 60_000))
  const one = entryOf(1000)
  const decoder = new EntryDecoder(one.length * 4)
  const a = decoder.decode(Buffer.from(one), 'a')
  for (const key of ['b', 'c', 'd']) decoder.decode(Buffer.from(one), key)
  t.equal(decoder.heldBytes, one.length * 4, 'four entries fill the bound')
  t.equal(decoder.decode(Buffer.from(one), 'a'), a, 'a is used again: now the most recent')
  const e = decoder.decode(Buffer.from(one), 'e')
  t.equal(decoder.heldBytes, one.length * 4, 'never more than the bound')
  t.equal(decoder.decode(Buffer.from(one), 'a'), a, 'the recently used entry stayed')
  t.equal(decoder.decode(Buffer.from(one), 'e'), e)
  const b = decoder.decode(Buffer.from(one), 'b')
  t.not(b, undefined, 'b was the least recently used: decoded anew')
  t.equal(decoder.heldBytes, one.length * 4)
  for (let i = 0; i < 100; i++) decoder.decode(Buffer.from(one), `k${i}`)
  t.equal(decoder.heldBytes, one.length * 4, 'still within the bound after 100 more keys')
  const big = entryOf(1000)
  const other = new EntryDecoder(big.length * 3)
  const decoded = other.decode(Buffer.from(big), 'big')
  t.equal(decoded?.body.length, 1000, 'an entry over a quarter of the bound is decoded')
  t.equal(other.heldBytes, 0, 'but not kept')
  t.equal(new EntryDecoder(1024).decode(Buffer.from(one), 'x') === decoder.decode(Buffer.from(one), 'x'), false, 'decoders share nothing')
})

t.test('a hit’s Vary keeps the live tokens and adds the stored ones once', async (t) => {
  t.equal(mergeVary('Origin', 'Accept-Encoding'), 'Origin, Accept-Encoding')
  t.equal(mergeVary('Origin, accept-encoding', 'Accept-Encoding'), 'Origin, accept-encoding')
  t.equal(mergeVary(undefined, ['a', 'b']), 'a, b')
  t.equal(mergeVary(['x', ' '], ''), 'x')
})

t.test('Age values past a day are made on demand', async (t) => {
  t.equal(ageValue(5), '5')
  t.equal(ageValue(5), ageValue(5))
  t.equal(ageValue(90_000), '90000')
})

t.test('header tokens of a list header, repeated or not', async (t) => {
  t.same(headerTokens(['Origin', 'Accept-Encoding, X-A ']), ['origin', 'accept-encoding', 'x-a'])
  t.same(headerTokens('a,, b'), ['a', 'b'])
  t.same(headerTokens(undefined), [])
})

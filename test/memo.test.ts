import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { sha1hex } from '../lib/core/encoding.js'
import { BoundedMemo, listBytes, MEMO_ITEM_OVERHEAD, stringBytes } from '../lib/core/memo.js'

t.test('a memo holds what fits and drops the oldest insertions past its bytes', async (t) => {
  const itemBytes = MEMO_ITEM_OVERHEAD + 2 * 'k0'.length + stringBytes('v'.repeat(100))
  const memo = new BoundedMemo<string>(itemBytes * 5, stringBytes)
  for (let i = 0; i < 5; i++) memo.set(`k${i}`, 'v'.repeat(100))
  t.same(memo.size, { items: 5, bytes: itemBytes * 5 })
  t.equal(memo.get('k0'), 'v'.repeat(100))
  memo.set('k5', 'v'.repeat(100))
  t.equal(memo.get('k0'), undefined, 'the oldest insertion went first (reads do not reorder)')
  t.equal(memo.get('k5'), 'v'.repeat(100))
  t.same(memo.size, { items: 5, bytes: itemBytes * 5 })
  memo.set('k1', 'short')
  t.equal(memo.get('k1'), 'short', 'a key set again is replaced')
  t.equal(memo.size.items, 5)
  t.equal(memo.size.bytes, itemBytes * 4 + MEMO_ITEM_OVERHEAD + 4 + stringBytes('short'), 'and its bytes recounted')
  memo.set('big', 'x'.repeat(itemBytes * 5))
  t.equal(memo.get('big'), undefined, 'an item larger than the whole bound is not kept')
  t.equal(memo.size.items, 5, 'and pushes nothing out')
  memo.delete('k2')
  memo.delete('never-set')
  t.equal(memo.get('k2'), undefined)
  t.equal(memo.size.items, 4)
  memo.clear()
  t.same(memo.size, { items: 0, bytes: 0 })
})

t.test('size estimates count every character of a list', async (t) => {
  t.equal(listBytes([]), 16)
  t.equal(listBytes(['ab', 'cde']), 16 + 16 + stringBytes('ab') + stringBytes('cde'))
})

t.test('the heap a full memo holds stays within its bound', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const settle = () => {
    for (let i = 0; i < 3; i++) gc()
    return process.memoryUsage().heapUsed
  }
  const maxBytes = 4 * 1024 * 1024
  const before = settle()
  const memo = new BoundedMemo<string>(maxBytes, stringBytes)
  // About 50 MB of estimated items go through a 4 MB memo, shaped as the stores' are:
  // request keys (JSON text) to entry keys (a prefix and a hex digest).
  for (let i = 0; i < 200_000; i++) memo.set(JSON.stringify(['fp', 'example.com', `/posts/${i}`, '']), 'gc:e:' + sha1hex(String(i)))
  const after = settle()
  t.ok(memo.size.bytes <= maxBytes, `estimated ${memo.size.bytes} bytes`)
  t.ok(after - before < maxBytes, `the heap grew by ${after - before} bytes, under the ${maxBytes} bound`)
  t.ok(memo.size.items > 1000, `it still holds ${memo.size.items} items`)
})

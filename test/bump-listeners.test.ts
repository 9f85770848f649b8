import t from 'tap'
import { GenerationalCache } from '../lib/index.js'

/** Bump listeners (CDN purgers, diagnostics): added and removed at any time. */

t.test('the function onBump returns removes that listener only, however often it is called', async (t) => {
  const cache = new GenerationalCache()
  const heard: string[] = []
  const stopFirst = cache.onBump(() => void heard.push('first'))
  cache.onBump(() => void heard.push('second'))
  cache.onBump(() => void heard.push('third'))
  stopFirst()
  stopFirst()
  t.equal(await cache.bump('g'), true)
  t.same(heard, ['second', 'third'], 'the first is gone; the others, the last included, still hear bumps')
  await cache.close()
})

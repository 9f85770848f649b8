import type { Test } from 'tap'
import {
  subscribeBreaker,
  subscribeBumps,
  subscribeFaults,
  subscribeLookups,
  subscribeStores,
  type BreakerMessage,
  type BumpMessage,
  type FaultMessage,
  type LookupContext,
  type StoreMessage
} from '../../lib/index.js'

/**
 * Everything the diagnostics channels publish for one cache (events carry its
 * prefix, so caches of other tests in the process are left out), as copies
 * taken when published; unsubscribed at teardown.
 */
export function recordChannels(t: Test, prefix: string) {
  const seen = {
    /** Lookups once answered (at end or asyncEnd). */
    lookups: [] as LookupContext[],
    /** Lookups whose store call failed (the trace's error event). */
    lookupErrors: [] as LookupContext[],
    stores: [] as StoreMessage[],
    bumps: [] as BumpMessage[],
    faults: [] as FaultMessage[],
    breaker: [] as BreakerMessage[]
  }
  const mine = <T extends { prefix: string }>(into: T[]) => (message: T) => void (message.prefix === prefix && into.push({ ...message }))
  const stops = [
    subscribeLookups({ answered: mine(seen.lookups), error: mine(seen.lookupErrors) }),
    subscribeStores(mine(seen.stores)),
    subscribeBumps(mine(seen.bumps)),
    subscribeFaults(mine(seen.faults)),
    subscribeBreaker(mine(seen.breaker))
  ]
  t.teardown(() => stops.forEach((stop) => stop()))
  return seen
}

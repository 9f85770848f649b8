/** What users import to observe a cache (README "Observability"): channel names, typed subscribe helpers, message and stats types. */
export {
  CHANNELS,
  subscribeLookups,
  subscribeStores,
  subscribeBumps,
  subscribeFaults,
  subscribeBreaker,
  type LookupContext,
  type LookupOutcome,
  type LookupSubscribers,
  type StoreMessage,
  type BumpMessage,
  type FaultMessage,
  type BreakerMessage,
  type BreakerState
} from './channels.js'
export { OTHER_ROUTES, type GroupcacheStats, type RouteCounts, type RouteStatsEntry, type StoreSize } from './stats.js'

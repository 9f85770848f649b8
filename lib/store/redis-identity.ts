import { performance } from 'node:perf_hooks'
import type { Cluster, Redis } from 'ioredis'
import { GroupcacheError } from '../errors.js'
import { FaultLog } from '../core/fault-log.js'
import type { StoreContext } from './store.js'
import { keySlot } from './cluster-slot.js'

/**
 * Moves an epoch above every value it could have held: past its current value
 * and past the server clock in µs (versions are seeded from that clock and
 * bumped by one, so a value it held before a restore is below both). Returns
 * the new epoch, or nil when there is none yet (it is then seeded from the
 * clock on the next lookup, which is above everything too).
 */
export const MOVE_EPOCH_SCRIPT = `
local e = redis.call('GET', KEYS[1])
if not e then return false end
local t = redis.call('TIME')
local floor = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next = math.max(tonumber(e) + 1, floor)
local s = string.format('%.0f', next)
redis.call('SET', KEYS[1], s)
return s
`

type Node = Redis & { gcMoveEpoch(key: string): Promise<string | null> }
type Socket = object

/** Waiters for a verification, at most (beyond, a lookup fails at once: it would time out anyway). */
const MAX_WAITERS = 10_000
const RETRY_MS = 1000
/** Times an untrusted lookup runs again after a verification (its reply came on a connection that changed meanwhile). */
const ATTEMPTS = 3
/**
 * How long an untrusted lookup waits for the verification, whatever number of
 * connection events arrive meanwhile (a new Cluster client connects, readies
 * and checks each node: one event each, several per node). The cache's own
 * `timeout` usually ends the wait first.
 */
const VERIFY_WAIT_MS = 2000
/** While lookups wait, they look at their deadline this often even when no event arrives. */
const TICK_MS = 100

interface NodeState {
  /** The connection (ioredis `stream`) whose server was checked, or undefined. */
  verified: Socket | undefined
  /** Moved on by every reset, so a check started before it cannot mark the connection verified. */
  round: number
  timer: NodeJS.Timeout | undefined
  readonly off: () => void
}

function streamOf(node: Redis): Socket | undefined {
  return (node as unknown as { stream?: Socket }).stream
}

/**
 * Versions never go back (README "Redis in production"), across Redis restarts from RDB/AOF,
 * replica promotions and Sentinel or Cluster failovers.
 *
 * Each server the store reads from keeps, in a key of its own data
 * (`<prefix>:server`, on a Cluster one per shard), the `run_id` of the server
 * the data was last verified under. On every connection (and on a Cluster,
 * every change of the primaries), before any reply from it is trusted, the
 * store reads the server's `run_id`: when the key holds another one (the data
 * was restored from a snapshot, or replicated to a promoted replica, and may
 * have lost acknowledged bumps), the epoch is moved above every value it could
 * have held, then the key is rewritten. Moving before recording makes a crash
 * in between safe (the next check moves again); two processes checking at
 * once move twice, which is harmless. A process started after the restore
 * reads the same key, so it moves the epoch too. Any new server identity costs
 * one cold cache, even a failover that lost nothing.
 *
 * A reply is trusted only when the connection it came on had been verified
 * before the command was sent and is still the current one: ioredis replays
 * its offline queue (and commands in flight when a connection dropped) on the
 * next connection before anything else, so those replies come from a server
 * not yet checked. An untrusted lookup is redone once the connection is
 * verified; if it is not verified by then, it fails (GC_STORE_UNAVAILABLE) and
 * the request is served by its handler.
 */
export class RedisIdentity {
  readonly #client: Redis | Cluster
  readonly #cluster: boolean
  readonly #keyPrefix: string
  readonly #contexts: StoreContext[] = []
  readonly #nodes = new Map<Redis, NodeState>()
  /** Cluster: changes whenever a node connects, disconnects, joins, leaves, or the set of primaries changes. */
  #stamp = 0
  /** Cluster: the stamp at which every connected node was verified. */
  #trustedStamp = -1
  #primaries = ''
  #waiters: (() => void)[] = []
  #tick: NodeJS.Timeout | undefined
  #closed = false
  #fallbackLog: FaultLog | undefined
  readonly #off: (() => void)[] = []
  /** Nodes whose last identity check failed (retried every RETRY_MS). */
  readonly #failing = new Set<Redis>()

  constructor(client: Redis | Cluster, keyPrefix: string) {
    this.#client = client
    this.#keyPrefix = keyPrefix
    this.#cluster = (client as { isCluster?: boolean }).isCluster === true
    if (typeof (client as unknown as Partial<Node>).gcMoveEpoch !== 'function') client.defineCommand('gcMoveEpoch', { numberOfKeys: 1, lua: MOVE_EPOCH_SCRIPT })
    if (this.#cluster) {
      const cluster = client as Cluster
      for (const node of cluster.nodes('all')) this.#watch(node)
      this.#listen(cluster, '+node', (node: Redis) => this.#watch(node))
      this.#listen(cluster, '-node', (node: Redis) => {
        this.#unwatch(node)
        this.#changed()
      })
      this.#listen(cluster, 'refresh', () => this.#refreshed())
    } else {
      this.#watch(client as Redis)
    }
  }

  /** A cache started on the store: its epoch must be moved too, so every connection is checked again. */
  attach(context: StoreContext): void {
    this.#contexts.push(context)
    this.#recheck()
  }

  /** Forgets every verification and checks every connected node again. */
  #recheck(): void {
    for (const [node, state] of this.#nodes) {
      state.verified = undefined
      state.round++
      if (node.status === 'ready') void this.#verify(node)
    }
    this.#changed()
  }

  #listen(emitter: Redis | Cluster, event: string, listener: (node: Redis) => void): void {
    emitter.on(event, listener)
    this.#off.push(() => emitter.off(event, listener))
  }

  /** Reports a fault of the store's own (a connection error) through the first attached cache, rate-limited. */
  report(err: unknown, what: string): void {
    const context = this.#contexts[0]
    if (context !== undefined) {
      context.reportFault(err, what)
      return
    }
    this.#fallbackLog ??= new FaultLog(10_000, console)
    this.#fallbackLog.report(what, console, { err }, `groupcache: Redis ${what} error`)
  }

  /**
   * Runs a read and returns its result only if it came from a verified
   * server; otherwise waits for the verification and runs it once more.
   */
  trust<T>(run: () => Promise<T>): Promise<T> {
    const token = this.#token()
    if (token === undefined) return this.#afterVerification(run)
    return run().then((result) => (this.#token() === token ? result : this.#afterVerification(run)))
  }

  async #afterVerification<T>(run: () => Promise<T>): Promise<T> {
    // Only runs count as attempts: events that leave the connection unverified do not use them up.
    const giveUp = performance.now() + VERIFY_WAIT_MS
    for (let runs = 0; runs < ATTEMPTS && !this.#closed; ) {
      const token = this.#token()
      if (token === undefined) {
        // A check that failed is retried in a second: fail now rather than hold the request.
        if (this.#failing.size > 0 || performance.now() >= giveUp || !(await this.#nextChange())) break
        continue
      }
      runs++
      const result = await run()
      if (this.#token() === token) return result
    }
    throw new GroupcacheError('GC_STORE_UNAVAILABLE', "groupcache: the Redis server's identity is not verified on this connection yet (it reconnected); served uncached")
  }

  /** What must be unchanged between sending a read and its reply for the reply to be trusted; undefined when untrusted now. */
  #token(): Socket | number | undefined {
    if (this.#cluster) return this.#trustedStamp === this.#stamp ? this.#stamp : undefined
    const node = this.#client as Redis
    const stream = streamOf(node)
    return stream !== undefined && this.#nodes.get(node)?.verified === stream ? stream : undefined
  }

  /** Resolves true on the next event (or tick), false at once when too many wait already. */
  #nextChange(): Promise<boolean> {
    if (this.#waiters.length >= MAX_WAITERS) return Promise.resolve(false)
    // Not unref'd: a request is waiting on it, and it stops once nobody waits.
    this.#tick ??= setTimeout(() => this.#wake(), TICK_MS)
    return new Promise((resolve) => this.#waiters.push(() => resolve(true)))
  }

  #wake(): void {
    clearTimeout(this.#tick)
    this.#tick = undefined
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  #watch(node: Redis): void {
    const changed = (): void => this.#changed()
    const ready = (): void => void this.#verify(node)
    node.on('connect', changed)
    node.on('close', changed)
    node.on('ready', ready)
    const off = (): void => {
      node.off('connect', changed)
      node.off('close', changed)
      node.off('ready', ready)
    }
    this.#nodes.set(node, { verified: undefined, round: 0, timer: undefined, off })
    if (node.status === 'ready') void this.#verify(node)
    this.#changed()
  }

  #unwatch(node: Redis): void {
    const state = this.#nodes.get(node) as NodeState
    clearTimeout(state.timer)
    state.off()
    this.#nodes.delete(node)
    this.#failing.delete(node)
  }

  /** Cluster: the slot map was fetched again; a change of primaries (a failover) means checking every node again. */
  #refreshed(): void {
    const cluster = this.#client as Cluster
    const primaries = cluster
      .nodes('master')
      .map((node) => `${String(node.options.host)}:${String(node.options.port)}`)
      .sort()
      .join(',')
    if (primaries === this.#primaries) return
    this.#primaries = primaries
    // Connect every primary now, so lookups do not meet unverified connections one node at a time.
    for (const node of cluster.nodes('master')) if (node.status === 'wait') node.connect(ignore)
    this.#recheck()
  }

  #changed(): void {
    this.#stamp++
    this.#settle()
    this.#wake()
  }

  /** Cluster: trusted when every node with a connection has had it verified. */
  #settle(): void {
    if (!this.#cluster) return
    for (const [node, state] of this.#nodes) {
      const stream = streamOf(node)
      if (node.status !== 'wait' && node.status !== 'end' && node.status !== 'close' && (stream === undefined || state.verified !== stream)) return
    }
    this.#trustedStamp = this.#stamp
  }

  async #verify(node: Redis): Promise<void> {
    // Called on 'ready', from a retry timer or a recheck: never after close (listeners and timers are gone by then).
    const state = this.#nodes.get(node) as NodeState
    const stream = streamOf(node) as Socket
    const round = state.round
    clearTimeout(state.timer)
    state.timer = undefined
    try {
      const info = String(await node.info('server'))
      const runId = /^run_id:(\S+)/m.exec(info)?.[1] as string
      // A replica answers reads of our keys with MOVED (reads go to primaries): it holds nothing we read.
      const replica = this.#cluster && /^role:slave/m.test(String(await node.info('replication')))
      if (!replica) for (const context of this.#contexts) await this.#check(node, context, runId)
    } catch (err) {
      // Closed meanwhile, or the connection this check was for is gone: its successor gets its own check.
      if (this.#closed || streamOf(node) !== stream) return
      this.report(err, 'identity check')
      this.#failing.add(node)
      state.timer = setTimeout(() => void this.#verify(node), RETRY_MS)
      state.timer.unref()
      this.#wake()
      return
    }
    this.#failing.delete(node)
    if (streamOf(node) !== stream || state.round !== round || this.#nodes.get(node) !== state) return
    state.verified = stream
    if (this.#cluster) this.#settle()
    this.#wake()
  }

  /** Compares the server's run_id with the one its data was verified under; moves the epoch when they differ. */
  async #check(node: Redis, context: StoreContext, runId: string): Promise<void> {
    const key = this.#identityKey(node, context.prefix)
    if (key === undefined) return
    const recorded = await node.get(key)
    if (recorded === runId) return
    const moved = await (this.#client as unknown as Node).gcMoveEpoch(context.epochKey)
    await node.set(key, runId)
    if (recorded !== null || moved !== null) {
      context.logger.warn(
        { previous: recorded, runId, epoch: moved, node: `${String(node.options.host)}:${String(node.options.port)}` },
        'groupcache: the Redis server is not the one its data was written under (restart from a snapshot, or a failover): moved the epoch past every earlier version, so the cache starts cold'
      )
    }
  }

  /**
   * The key holding the run_id, in this node's own data. Single node: one
   * key. Cluster: a key in a slot this node serves (hash tag searched
   * deterministically, so every process picks the same one); undefined when
   * the node serves no slot a key of ours can reach.
   */
  #identityKey(node: Redis, prefix: string): string | undefined {
    if (!this.#cluster) return `${prefix}:server`
    const slots = (this.#client as Cluster).slots
    const self = `${String(node.options.host)}:${String(node.options.port)}`
    for (let i = 0; i < 32_768; i++) {
      const key = `${prefix}:server:{${i}}`
      if (slots[keySlot(this.#keyPrefix + key)]?.[0] === self) return key
    }
    return undefined
  }

  close(): void {
    this.#closed = true
    for (const node of [...this.#nodes.keys()]) this.#unwatch(node)
    for (const off of this.#off.splice(0)) off()
    this.#wake()
  }
}

/** A connect callback: a failed connect is reported by the node's own 'error' events. */
function ignore(): void {}

import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import t from 'tap'
import { request } from './helpers/http.js'
import { startRedis } from './helpers/redis.js'

/**
 * `npm run example` as a user runs it (npm → sh → tsx → node), stopped the way
 * a user stops it: Ctrl-C (SIGINT) or `kill` (SIGTERM) sent to the npm process.
 */

const ROOT = new URL('..', import.meta.url)
const STARTUP_MS = 60_000
const SHUTDOWN_MS = 15_000

interface Run {
  base: string
  output(): string
  /** Resolves with npm's exit code and signal, or rejects after `ms`. */
  exited(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  kill(signal: NodeJS.Signals): void
  /** SIGKILL to npm and everything it started. */
  killAll(): void
}

/**
 * The environment a user's shell would give: none of tap's coverage or loader
 * settings. (The example runs under tsx, which transpiles lib/ to other offsets
 * than the test runner's loader: its V8 coverage, merged with the suite's,
 * garbled the report of every lib/ file it loaded.)
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'NODE_V8_COVERAGE' || name === 'NODE_OPTIONS' || name.startsWith('_TAPJS') || name.startsWith('TAP')) continue
    env[name] = value
  }
  return env
}

async function startExample(script: string, env: Record<string, string>): Promise<Run> {
  // Through `env -i`: tap's process tracking re-adds its variables to the
  // environment of every spawn, and `env` (exec'ing npm, same pid) drops them.
  const vars = Object.entries({ ...userEnv(), PORT: '0', ...env }).map(([name, value]) => `${name}=${value ?? ''}`)
  const child = spawn('env', ['-i', ...vars, 'npm', 'run', '--silent', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so teardown can reach a server orphaned by a failed stop.
    detached: true
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within ${STARTUP_MS} ms:\n${output}`)), STARTUP_MS)
    const check = (): void => {
      const found = /groupcache example blog on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (found?.[1] !== undefined) {
        clearTimeout(timer)
        resolve(found[1])
      }
    }
    child.stdout.on('data', check)
    void exit.then(() => {
      clearTimeout(timer)
      reject(new Error(`the example exited before listening:\n${output}`))
    })
  })
  return {
    base,
    output: () => output,
    kill: (signal) => child.kill(signal),
    killAll: () => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL')
      } catch {
        // The group is already gone: the stop was clean.
      }
    },
    exited: (ms) =>
      Promise.race([
        exit,
        new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`still running ${ms} ms after the signal:\n${output}`)), ms).unref())
      ])
  }
}

/** True when nothing accepts connections on the port any more. */
function portRefuses(base: string): Promise<boolean> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname)
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(true))
  })
}

const cases: { name: string; script: string; signal: NodeJS.Signals; redis: boolean }[] = [
  { name: 'Fastify, memory store, SIGTERM', script: 'example', signal: 'SIGTERM', redis: false },
  { name: 'Fastify, memory store, SIGINT', script: 'example', signal: 'SIGINT', redis: false },
  { name: 'Express, Redis store, SIGTERM', script: 'example:express', signal: 'SIGTERM', redis: true },
  { name: 'Fastify, Redis store, SIGINT', script: 'example', signal: 'SIGINT', redis: true }
]

for (const c of cases) {
  t.test(`npm run ${c.script} (${c.name}) closes and exits 0`, async (t) => {
    const env: Record<string, string> = {}
    let redisClients: (() => Promise<number>) | undefined
    if (c.redis) {
      const redis = await startRedis()
      t.teardown(() => redis.stop())
      const admin = redis.client()
      t.teardown(() => admin.quit())
      env.REDIS_URL = redis.url
      redisClients = async () => String(await admin.client('LIST')).trim().split('\n').length
    }
    const run = await startExample(c.script, env)
    t.teardown(() => run.killAll())

    t.equal((await request(run.base, 'GET', '/users/1')).status, 200, 'it serves')
    t.equal((await request(run.base, 'GET', '/users/1')).headers['cache-status']?.toString().startsWith('groupcache; hit'), true, 'and caches')
    if (redisClients !== undefined) t.ok((await redisClients()) >= 2, 'the example holds a Redis connection')

    run.kill(c.signal)
    const { code, signal } = await run.exited(SHUTDOWN_MS)
    t.same({ code, signal }, { code: 0, signal: null }, `exit code 0 after ${c.signal}`)
    t.match(run.output(), new RegExp(`${c.signal}: closing\\s+closed`), 'the close path ran to its end')
    t.ok(await portRefuses(run.base), 'the port is free')
    if (redisClients !== undefined) t.equal(await redisClients(), 1, 'only the test’s own Redis connection is left')
  })
}

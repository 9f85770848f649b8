/**
 * The benchmark suite: `npm run bench` (about 7 minutes) or `npm run bench -- --quick`
 * (about 2). Each server runs in its own process; baseline and candidate are
 * measured in alternating rounds in the same run, and results are ratios.
 * The load comes from wrk when it is on PATH (a C client leaves the server the
 * bottleneck on a 2-core machine), else from autocannon; `--autocannon` forces it.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import { freePort, startRedis } from '../test/helpers/redis.js'
import { POSTS } from './body.js'

const quick = process.argv.includes('--quick')
/** `--only=a,b`: the pairs whose candidate is named, and the extra rows named (coalesce, memory, orphans). */
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',')
const wanted = (name: string) => only === undefined || only.includes(name)
const DURATION = quick ? 3 : 8
const ROUNDS = Number(process.env.ROUNDS ?? (quick ? 3 : 5))
const CONNECTIONS = 20
/** Seconds of load each server gets before the measured rounds. */
const WARMUP = Number(process.env.WARMUP ?? 3)

interface Pair {
  name: string
  /** The baseline is this scenario built from another commit (`--against=<ref>`). */
  baselineBuild?: string
  baseline: string
  candidate: string
  goal: number
  /** Every request to a new URL (misses). */
  unique?: boolean
  /** Requests go round /posts/1 … /posts/POSTS (the param scenarios). */
  posts?: boolean
  /** Also measure the Redis CPU each side costs per request (INFO commandstats). */
  redisCpu?: boolean
}

/**
 * `--against=<git ref>`: the memory-hit scenario built from another commit, as
 * the baseline of this tree's (both answer hits in onRequest, as every commit
 * before the handler wrapper did): what a change cost the hit path, e.g. the
 * diagnostics-channel guards with nobody subscribed.
 */
const against = process.argv.find((a) => a.startsWith('--against='))?.slice('--against='.length)

const PAIRS: Pair[] = [
  { name: 'memory hit, static route', baseline: 'bare', candidate: 'memory-hit', goal: 0.9 },
  { name: 'memory hit, lookupAt onRequest', baseline: 'bare', candidate: 'memory-hit-onrequest', goal: 0.9 },
  { name: 'memory hit, /posts/:id, 2 groups', baseline: 'bare-param', candidate: 'memory-hit-param', goal: 0.9, posts: true },
  { name: 'Redis hit, static route', baseline: 'redis-get-hook', candidate: 'redis-hit', goal: 0.9, redisCpu: true },
  { name: 'Redis hit, /posts/:id, 2 groups', baseline: 'redis-get-hook-param', candidate: 'redis-hit-param', goal: 0.9, posts: true, redisCpu: true },
  { name: 'Express hit, gc.route()', baseline: 'express-floor', candidate: 'express-hit', goal: 0.9 },
  { name: 'Express hit, route table', baseline: 'express-floor', candidate: 'express-table-hit', goal: 0.9 },
  { name: 'Express hit, gc.route()', baseline: 'apicache-hit', candidate: 'express-hit', goal: 1.0 },
  { name: 'Express hit, route table', baseline: 'apicache-hit', candidate: 'express-table-hit', goal: 1.0 },
  { name: 'miss (2 ms handler)', baseline: 'miss-uncached', candidate: 'miss-cached', goal: 0.95, unique: true }
]

/**
 * The servers run as tsc's JavaScript (bench/tsconfig.json), as a built app
 * does: under tsx every closure in lib/ would also pay for esbuild's name helper.
 */
const BUILD = '.bench-build/bench'
const built = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'bench/tsconfig.json'], { stdio: 'inherit' })
if (built.status !== 0) throw new Error('bench: compiling the servers (tsc -p bench/tsconfig.json) failed')

/** Checks out `ref` beside this tree and compiles its bench servers the same way; returns where they are. */
function buildRef(ref: string): string {
  const dir = join(tmpdir(), `gc-bench-${ref.replace(/[^\w.-]/g, '_')}`)
  if (!existsSync(dir)) {
    const added = spawnSync('git', ['worktree', 'add', '--detach', dir, ref], { stdio: 'inherit' })
    if (added.status !== 0) throw new Error(`bench: git worktree add ${ref} failed`)
    symlinkSync(join(process.cwd(), 'node_modules'), join(dir, 'node_modules'))
  }
  copyFileSync('bench/tsconfig.json', join(dir, 'bench/tsconfig.json'))
  const built = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'bench/tsconfig.json'], { cwd: dir, stdio: 'inherit' })
  // Older commits may not type-check under today's settings: tsc still emits, which is all the benchmark needs.
  if (!existsSync(join(dir, BUILD, 'server.js'))) throw new Error(`bench: compiling the servers of ${ref} failed (${built.status})`)
  return join(dir, BUILD)
}

if (against !== undefined) {
  PAIRS.push({ name: `memory hit, this tree vs ${against} (hits answered in onRequest)`, baseline: `memory-hit@${against}`, baselineBuild: buildRef(against), candidate: 'memory-hit-onrequest', goal: 0.95 })
}

async function startServer(scenario: string, redisPort: number, build = BUILD): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort()
  const proc = spawn(process.execPath, [`${build}/server.js`, scenario.replace(/@.*$/, ''), String(port), String(redisPort)], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`server ${scenario} exited with ${code}`)))
    proc.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve())
  })
  return { url: `http://127.0.0.1:${port}`, proc }
}

const WRK = !process.argv.includes('--autocannon') && spawnSync('wrk', ['--version']).error === undefined
const CLIENT = WRK ? 'wrk -t1' : 'autocannon'
const scripts = mkdtempSync(join(tmpdir(), 'gc-bench-'))
let counter = 0

/** A wrk script giving every request a URL no earlier load used (for misses). */
function uniqueScript(): string {
  const file = join(scripts, `unique-${++counter}.lua`)
  writeFileSync(file, `local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, "/items?run=${counter}&n=" .. n)\nend\n`)
  return file
}

/** A wrk script going round /posts/1 … /posts/POSTS. */
function postsScript(): string {
  const file = join(scripts, 'posts.lua')
  writeFileSync(file, `local n = 0\nrequest = function()\n  n = n % ${POSTS} + 1\n  return wrk.format(nil, "/posts/" .. n)\nend\n`)
  return file
}

interface Load {
  rps: number
  requests: number
}

async function load(url: string, pair: Pair, seconds: number): Promise<Load> {
  if (WRK) {
    const script = pair.unique ? ['-s', uniqueScript()] : pair.posts ? ['-s', postsScript()] : []
    const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, ...script, `${url}/items`]
    const { stdout } = await promisify(execFile)('wrk', args)
    if (/Non-2xx|Socket errors/.test(stdout)) throw new Error(`${url}: ${stdout}`)
    return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]), requests: Number(/(\d+) requests in/.exec(stdout)?.[1]) }
  }
  let n = 0
  const path = () => (pair.unique ? `/items?n=${++counter}` : pair.posts ? `/posts/${(n++ % POSTS) + 1}` : '/items')
  const result = await autocannon({
    url: `${url}/items`,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [{ setupRequest: (req: { path?: string }) => ({ ...req, path: path() }) }]
  })
  if (result.errors > 0 || result.non2xx > 0) throw new Error(`${url}: ${result.errors} errors, ${result.non2xx} non-2xx`)
  return { rps: result.requests.average, requests: result.requests.total }
}

/**
 * Redis CPU per request of one server: the usec INFO commandstats reports for
 * every command run during a load, over the requests served (commands run by
 * scripts are counted too). The server under load is the only client.
 */
async function redisCpu(url: string, pair: Pair, redisPort: number): Promise<{ usPerRequest: number; commands: Record<string, number> }> {
  const admin = new Redis({ host: '127.0.0.1', port: redisPort })
  try {
    await admin.config('RESETSTAT')
    const { requests } = await load(url, pair, 3)
    const info = await admin.info('commandstats')
    let usec = 0
    const commands: Record<string, number> = {}
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      if (m[1] === 'info' || m[1] === 'config|resetstat') continue
      usec += Number(m[3])
      commands[m[1] as string] = Number((Number(m[3]) / Number(m[2])).toFixed(2))
    }
    return { usPerRequest: usec / requests, commands }
  } finally {
    admin.disconnect()
  }
}

/** CPU time (user + system) a process has used so far, in µs, from /proc (Linux); NaN elsewhere. */
function cpuMicros(pid: number | undefined): number {
  try {
    // Fields after the command name (which may hold spaces): state is [0], utime [11], stime [12], in clock ticks (100 Hz on Linux).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100
  } catch {
    return Number.NaN
  }
}

/**
 * One measured load of a server: its throughput, and the CPU its process
 * spent per request. On a shared VM (steal time, neighbours) throughput
 * swings between rounds; CPU per request, which excludes time the server
 * waited, is the steadier measure of what groupcache adds.
 */
async function measure(server: { url: string; proc: ChildProcess }, pair: Pair, seconds: number): Promise<{ rps: number; cpuUs: number }> {
  const before = cpuMicros(server.proc.pid)
  const { rps, requests } = await load(server.url, pair, seconds)
  return { rps, cpuUs: (cpuMicros(server.proc.pid) - before) / requests }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const fmt = (x: number) => x.toFixed(2)

async function runPair(pair: Pair, redisPort: number) {
  const a = await startServer(pair.baseline, redisPort, pair.baselineBuild)
  const b = await startServer(pair.candidate, redisPort)
  try {
    await load(a.url, pair, WARMUP) // warm up (and fill caches)
    await load(b.url, pair, WARMUP)
    const rpsA: number[] = []
    const rpsB: number[] = []
    const ratios: number[] = []
    const cpuA: number[] = []
    const cpuB: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate the order so drift on a shared machine hits both sides.
      const first = round % 2 === 0 ? 'a' : 'b'
      const x = await measure(first === 'a' ? a : b, pair, DURATION)
      const y = await measure(first === 'a' ? b : a, pair, DURATION)
      const [ra, rb] = first === 'a' ? [x, y] : [y, x]
      rpsA.push(ra.rps)
      rpsB.push(rb.rps)
      ratios.push(rb.rps / ra.rps)
      cpuA.push(ra.cpuUs)
      cpuB.push(rb.cpuUs)
      console.error(
        `  ${pair.name} round ${round + 1}: ${pair.baseline} ${ra.rps.toFixed(0)} req/s ${ra.cpuUs.toFixed(1)} µs CPU/req, ${pair.candidate} ${rb.rps.toFixed(0)} req/s ${rb.cpuUs.toFixed(1)} µs CPU/req, ratio ${fmt(rb.rps / ra.rps)}`
      )
    }
    const ratio = median(ratios)
    // Requests per CPU-second, candidate over baseline: the throughput ratio a server bound by its own CPU would show.
    const cpuRatio = median(cpuA) / median(cpuB)
    const cpu = pair.redisCpu ? { baseline: await redisCpu(a.url, pair, redisPort), candidate: await redisCpu(b.url, pair, redisPort) } : undefined
    if (cpu) console.error(`  ${pair.name} Redis CPU per request: ${pair.baseline} ${cpu.baseline.usPerRequest.toFixed(2)} µs ${JSON.stringify(cpu.baseline.commands)}, ${pair.candidate} ${cpu.candidate.usPerRequest.toFixed(2)} µs ${JSON.stringify(cpu.candidate.commands)}`)
    return { ...pair, baselineRps: median(rpsA), candidateRps: median(rpsB), ratio, min: Math.min(...ratios), max: Math.max(...ratios), met: ratio >= pair.goal, cpu, baselineCpuUs: median(cpuA), candidateCpuUs: median(cpuB), cpuRatio }
  } finally {
    a.proc.kill()
    b.proc.kill()
  }
}

async function coalesce(redisPort: number) {
  const server = await startServer('coalesce', redisPort)
  try {
    const responses = await Promise.all(Array.from({ length: 100 }, () => fetch(`${server.url}/cold`).then((r) => r.status)))
    const { runs } = (await (await fetch(`${server.url}/runs`)).json()) as { runs: number }
    return { requests: responses.length, ok: responses.filter((s) => s === 200).length, runs, met: runs === 1 }
  } finally {
    server.proc.kill()
  }
}

async function orphans() {
  const proc = spawn(process.execPath, [`${BUILD}/orphans.js`], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()))
  await new Promise((resolve) => proc.once('exit', resolve))
  const o = JSON.parse(out.trim().split('\n').pop() as string) as { generations: number; urls: number; keys: number }
  return { ...o, met: o.keys <= 2.5 * o.urls }
}

async function memory() {
  const proc = spawn(process.execPath, ['--expose-gc', `${BUILD}/memory.js`], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()))
  await new Promise((resolve) => proc.once('exit', resolve))
  const m = JSON.parse(out.trim().split('\n').pop() as string) as { growth: number; maxBytes: number; entries: number; held: { entries: number; bytes: number } }
  return { ...m, ratio: m.growth / m.maxBytes, met: m.growth <= m.maxBytes * 1.5 }
}

const redis = await startRedis()
try {
  const pairs = []
  for (const pair of PAIRS) if (wanted(pair.candidate) || (pair.baselineBuild !== undefined && wanted('against'))) pairs.push(await runPair(pair, redis.port))
  const coalesced = wanted('coalesce') ? await coalesce(redis.port) : undefined
  const orphaned = wanted('orphans') ? await orphans() : undefined
  const mem = wanted('memory') ? await memory() : undefined

  const lines = [
    `Node ${process.version}, ${quick ? 'quick' : 'full'} run: ${ROUNDS} alternating rounds of ${DURATION} s, ${CONNECTIONS} connections (${CLIENT}).`,
    '',
    '| scenario | compared with | goal | ratio (median) | min–max | baseline req/s | groupcache req/s | met | server CPU µs/req (baseline → groupcache) | CPU ratio |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...pairs.map(
      (p) =>
        `| ${p.name} | ${p.baseline} | ≥ ${p.goal}× | **${fmt(p.ratio)}×** | ${fmt(p.min)}–${fmt(p.max)} | ${p.baselineRps.toFixed(0)} | ${p.candidateRps.toFixed(0)} | ${p.met ? 'yes' : 'no'} | ${p.baselineCpuUs.toFixed(1)} → ${p.candidateCpuUs.toFixed(1)} | ${fmt(p.cpuRatio)}× |`
    )
  ]
  for (const p of pairs) {
    if (p.cpu === undefined) continue
    const us = p.cpu.candidate.usPerRequest
    lines.push(`| Redis CPU per hit, ${p.name.replace('Redis hit, ', '')} | ${p.baseline}: ${p.cpu.baseline.usPerRequest.toFixed(2)} µs | ≤ 1 µs | **${us.toFixed(2)} µs** (${Object.entries(p.cpu.candidate.commands).map(([c, u]) => `${c} ${u} µs/call`).join(', ')}) | | | | ${us <= 1 ? 'yes' : 'no'} |`)
  }
  if (coalesced) lines.push(`| 100 concurrent cold requests, one key | — | handler runs once | ran **${coalesced.runs}×** (${coalesced.ok}/${coalesced.requests} answered 200) | | | | ${coalesced.met ? 'yes' : 'no'} |`)
  if (orphaned) lines.push(`| keys in Redis after ${orphaned.generations} generations × ${orphaned.urls} URLs | — | ≤ ${2.5 * orphaned.urls} | **${orphaned.keys} keys** | | | | ${orphaned.met ? 'yes' : 'no'} |`)
  if (mem) lines.push(`| memory: ${mem.entries} distinct 2 KB entries | maxBytes ${mem.maxBytes / 2 ** 20} MiB | RSS growth ≤ 1.5× the bound | RSS grew **${(mem.growth / 2 ** 20).toFixed(1)} MiB** (${fmt(mem.ratio)}× the bound; ${mem.held.entries} entries, ${(mem.held.bytes / 2 ** 20).toFixed(1)} MiB held) | | | | ${mem.met ? 'yes' : 'no'} |`)
  console.log(lines.join('\n'))
  mkdirSync('bench/results', { recursive: true })
  writeFileSync('bench/results/latest.json', JSON.stringify({ date: new Date().toISOString(), quick, client: CLIENT, pairs, coalesced, orphans: orphaned, memory: mem }, null, 2))
} finally {
  await redis.stop()
}

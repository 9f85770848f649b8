/**
 * The benchmark suite: `npm run bench` (about 7 minutes) or `npm run bench -- --quick`
 * (about 2). Each server runs in its own process; baseline and candidate are
 * measured in alternating rounds in the same run, and results are ratios.
 * The load comes from wrk when it is on PATH (a C client leaves the server the
 * bottleneck on a 2-core machine), else from autocannon; `--autocannon` forces it.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import autocannon from 'autocannon'
import { freePort, startRedis } from '../test/helpers/redis.js'

const quick = process.argv.includes('--quick')
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length)
const DURATION = quick ? 3 : 8
const ROUNDS = Number(process.env.ROUNDS ?? (quick ? 3 : 5))
const CONNECTIONS = 20
/** Seconds of load each server gets before the measured rounds. */
const WARMUP = Number(process.env.WARMUP ?? 1)

interface Pair {
  name: string
  baseline: string
  candidate: string
  goal: number
  /** Every request to a new URL (misses). */
  unique?: boolean
}

const PAIRS: Pair[] = [
  { name: 'memory-store hit', baseline: 'bare', candidate: 'memory-hit', goal: 0.9 },
  { name: 'Redis hit (single node)', baseline: 'redis-get-hook', candidate: 'redis-hit', goal: 0.9 },
  { name: 'Express hit, gc.route()', baseline: 'apicache-hit', candidate: 'express-hit', goal: 1.5 },
  { name: 'Express hit, route table', baseline: 'apicache-hit', candidate: 'express-table-hit', goal: 1.5 },
  { name: 'miss (2 ms handler)', baseline: 'miss-uncached', candidate: 'miss-cached', goal: 0.95, unique: true }
]

async function startServer(scenario: string, redisPort: number): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort()
  const proc = spawn(process.execPath, ['--import', 'tsx', 'bench/server.ts', scenario, String(port), String(redisPort)], { stdio: ['ignore', 'pipe', 'inherit'] })
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

async function load(url: string, unique: boolean, seconds: number): Promise<number> {
  if (WRK) {
    const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, ...(unique ? ['-s', uniqueScript()] : []), `${url}/items`]
    const { stdout } = await promisify(execFile)('wrk', args)
    if (/Non-2xx|Socket errors/.test(stdout)) throw new Error(`${url}: ${stdout}`)
    return Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1])
  }
  const result = await autocannon({
    url: `${url}/items`,
    connections: CONNECTIONS,
    duration: seconds,
    ...(unique ? { requests: [{ setupRequest: (req: { path?: string }) => ({ ...req, path: `/items?n=${++counter}` }) }] } : {})
  })
  if (result.errors > 0 || result.non2xx > 0) throw new Error(`${url}: ${result.errors} errors, ${result.non2xx} non-2xx`)
  return result.requests.average
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const fmt = (x: number) => x.toFixed(2)

async function runPair(pair: Pair, redisPort: number) {
  const a = await startServer(pair.baseline, redisPort)
  const b = await startServer(pair.candidate, redisPort)
  try {
    await load(a.url, !!pair.unique, WARMUP) // warm up (and fill caches)
    await load(b.url, !!pair.unique, WARMUP)
    const rpsA: number[] = []
    const rpsB: number[] = []
    const ratios: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate the order so drift on a shared machine hits both sides.
      const first = round % 2 === 0 ? 'a' : 'b'
      const x = await load(first === 'a' ? a.url : b.url, !!pair.unique, DURATION)
      const y = await load(first === 'a' ? b.url : a.url, !!pair.unique, DURATION)
      const [ra, rb] = first === 'a' ? [x, y] : [y, x]
      rpsA.push(ra)
      rpsB.push(rb)
      ratios.push(rb / ra)
      console.error(`  ${pair.name} round ${round + 1}: ${pair.baseline} ${ra.toFixed(0)} req/s, ${pair.candidate} ${rb.toFixed(0)} req/s, ratio ${fmt(rb / ra)}`)
    }
    const ratio = median(ratios)
    return { ...pair, baselineRps: median(rpsA), candidateRps: median(rpsB), ratio, min: Math.min(...ratios), max: Math.max(...ratios), met: ratio >= pair.goal }
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

async function memory() {
  const proc = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/memory.ts'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()))
  await new Promise((resolve) => proc.once('exit', resolve))
  const m = JSON.parse(out.trim().split('\n').pop() as string) as { growth: number; maxBytes: number; entries: number; held: { entries: number; bytes: number } }
  return { ...m, ratio: m.growth / m.maxBytes, met: m.growth <= m.maxBytes * 1.2 }
}

const redis = await startRedis()
try {
  const pairs = []
  for (const pair of PAIRS) if (only === undefined || pair.candidate === only) pairs.push(await runPair(pair, redis.port))
  const coalesced = only === undefined || only === 'coalesce' ? await coalesce(redis.port) : undefined
  const mem = only === undefined || only === 'memory' ? await memory() : undefined

  const lines = [
    `Node ${process.version}, ${quick ? 'quick' : 'full'} run: ${ROUNDS} alternating rounds of ${DURATION} s, ${CONNECTIONS} connections (${CLIENT}).`,
    '',
    '| scenario | compared with | goal | ratio (median) | min–max | baseline req/s | groupcache req/s | met |',
    '|---|---|---|---|---|---|---|---|',
    ...pairs.map((p) => `| ${p.name} | ${p.baseline} | ≥ ${p.goal}× | **${fmt(p.ratio)}×** | ${fmt(p.min)}–${fmt(p.max)} | ${p.baselineRps.toFixed(0)} | ${p.candidateRps.toFixed(0)} | ${p.met ? 'yes' : 'no'} |`)
  ]
  if (coalesced) lines.push(`| 100 concurrent cold requests, one key | — | handler runs once | ran **${coalesced.runs}×** (${coalesced.ok}/${coalesced.requests} answered 200) | | | | ${coalesced.met ? 'yes' : 'no'} |`)
  if (mem) lines.push(`| memory: ${mem.entries} distinct 2 KB entries | maxBytes ${mem.maxBytes / 2 ** 20} MiB | RSS growth ≤ bound + 20% | RSS grew **${(mem.growth / 2 ** 20).toFixed(1)} MiB** (${fmt(mem.ratio)}× the bound; ${mem.held.entries} entries, ${(mem.held.bytes / 2 ** 20).toFixed(1)} MiB held) | | | | ${mem.met ? 'yes' : 'no'} |`)
  console.log(lines.join('\n'))
  mkdirSync('bench/results', { recursive: true })
  writeFileSync('bench/results/latest.json', JSON.stringify({ date: new Date().toISOString(), quick, client: CLIENT, pairs, coalesced, memory: mem }, null, 2))
} finally {
  await redis.stop()
}

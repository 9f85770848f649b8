import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import t from 'tap'
import { makeConsumer, ROOT, tsc } from './helpers/consumer.js'

/**
 * Every ```ts block of README.md, compiled unchanged in a fresh consumer
 * project: the tsconfig `tsc --init` writes (strict, module NodeNext, …), with
 * Node's types, importing 'groupcache' and 'groupcache/express' from a built
 * copy of the package. A block may use the few helpers PRELUDE declares, the
 * app-specific functions a snippet stands for; nothing else is added.
 */

const PRELUDE = `import type { FastifyInstance, preHandlerHookHandler, RouteHandlerMethod } from 'fastify'
import type { RequestHandler } from 'express'

declare global {
  /** The app a snippet registers on, when it does not create one. */
  const app: FastifyInstance
  /** The user's data layer. */
  const db: {
    updateUser(id: string, changes: unknown): Promise<void>
    getUser(id: string): Promise<unknown>
  }
  /** The user's page renderer. */
  function render(...args: unknown[]): Promise<string>
  /** Route handlers a snippet names without writing them (usable on Fastify and Express). */
  const getUser: RouteHandlerMethod & RequestHandler
  const listPosts: RouteHandlerMethod & RequestHandler
  const createPost: RouteHandlerMethod & RequestHandler
  const listMembers: RouteHandlerMethod & RequestHandler
  const showProfile: RouteHandlerMethod & RequestHandler
  /** The user's authentication (a Fastify preHandler, an Express middleware). */
  const requireLogin: preHandlerHookHandler & RequestHandler
  function update(req: unknown): unknown
}
export {}
`

interface Snippet {
  /** README line of the opening fence. */
  line: number
  code: string
}

function tsBlocks(markdown: string): Snippet[] {
  const blocks: Snippet[] = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i] as string)) continue
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] as string); i++) body.push(lines[i] as string)
    blocks.push({ line: start + 1, code: body.join('\n') })
  }
  return blocks
}

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const snippets = tsBlocks(readme)

t.test('the README has TypeScript blocks to check', async (t) => {
  t.ok(snippets.length >= 4, `found ${snippets.length} \`\`\`ts blocks`)
  t.ok(snippets.some((s) => s.code.includes("from 'groupcache'")), "one imports 'groupcache'")
  t.ok(snippets.some((s) => s.code.includes("from 'groupcache/express'")), "one imports 'groupcache/express'")
})

t.test('every README ts block compiles, unchanged, in a fresh strict NodeNext consumer project', async (t) => {
  const consumer = await makeConsumer()
  t.teardown(() => consumer.remove())
  const dir = consumer.dir
  // The tsconfig a new TypeScript project starts from, plus Node's types and no emit.
  await tsc(['--init'], dir)
  writeFileSync(join(dir, 'tsconfig.project.json'), JSON.stringify({ extends: './tsconfig.json', compilerOptions: { types: ['node'], noEmit: true }, include: ['*.ts'] }))
  const init = readFileSync(join(dir, 'tsconfig.json'), 'utf8')
  t.match(init, /"strict": true/, 'tsc --init gives strict')
  t.match(init, /"module": "nodenext"/i, 'and module NodeNext')

  writeFileSync(join(dir, 'prelude.ts'), PRELUDE)
  // A canary: proves the checker runs and reports by file.
  writeFileSync(join(dir, 'canary.ts'), "export const notANumber: number = 'x'\n")
  const files = new Map<string, Snippet>()
  snippets.forEach((snippet, i) => {
    const file = `readme-${String(i + 1).padStart(2, '0')}.ts`
    // `export {}` keeps a block without imports a module of its own, as a file with imports is.
    writeFileSync(join(dir, file), `${snippet.code}\nexport {}\n`)
    files.set(file, snippet)
  })

  const { output } = await tsc(['-p', 'tsconfig.project.json', '--pretty', 'false'], dir)
  const errors = output.split('\n').filter((l) => /^[\w.-]+\.ts\(\d+,\d+\): error/.test(l))
  t.ok(errors.some((e) => e.startsWith('canary.ts(1,14): error TS2322')), 'the canary error is reported')
  const inSnippets = errors
    .filter((e) => !e.startsWith('canary.ts'))
    .map((e) => {
      const [, file = '', line = '0'] = /^([\w.-]+)\((\d+),/.exec(e) ?? []
      const snippet = files.get(file)
      return snippet === undefined ? e : `README.md:${snippet.line + Number(line)}: ${e.slice(e.indexOf('error'))}`
    })
  t.same(inSnippets, [], 'no type errors in README snippets')
})

t.test('README links stay inside the repository', async (t) => {
  t.notMatch(readme, /\]\(\.\.\//, 'no link climbs out of the repository')
  const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string).filter((href) => !/^(https?:|mailto:|#)/.test(href))
  for (const href of links) {
    const target = join(ROOT, href.split('#')[0] as string)
    t.notOk(relative(ROOT, target).startsWith('..'), `${href} does not leave the package`)
    t.ok(existsSync(target), `${href} exists`)
  }
})

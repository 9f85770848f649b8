import type { Test } from 'tap'
import type { GroupcacheOptions } from '../../lib/index.js'
import { adapters, type TestApp, type TestRoute } from './apps.js'
import { storeKits, type StoreKit } from './stores.js'

export interface MatrixContext {
  /** Starts an app of the current adapter on a fresh store (or the one given), closed at teardown. */
  app(routes: TestRoute[], options?: GroupcacheOptions): Promise<TestApp>
  adapter: string
  store: StoreKit
}

let counter = 0

/**
 * Runs a scenario against every adapter on every store, so the frameworks and
 * the stores cannot drift apart: each gets the same requests and assertions.
 */
export async function matrix(t: Test, scenario: (t: Test, ctx: MatrixContext) => Promise<void>): Promise<void> {
  for (const store of await storeKits(t)) {
    for (const [adapter, factory] of Object.entries(adapters)) {
      // GC_MATRIX_ADAPTER=fastify runs one adapter while working on it; the suite runs both.
      if (process.env.GC_MATRIX_ADAPTER !== undefined && process.env.GC_MATRIX_ADAPTER !== adapter) continue
      await t.test(`${adapter} on ${store.name}`, async (t) => {
        const apps: TestApp[] = []
        t.teardown(async () => {
          for (const app of apps) await app.close()
        })
        await scenario(t, {
          adapter,
          store,
          app: async (routes, options = {}) => {
            const app = await factory({ store: store.make(), prefix: `t${process.pid}x${++counter}`, ...options }, routes)
            apps.push(app)
            return app
          }
        })
      })
    }
  }
}

/** A counter of handler runs, and a gate a handler can wait on. */
export function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void
  const wait = new Promise<void>((resolve) => (open = resolve))
  return { wait, open }
}

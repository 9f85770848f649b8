import type { LookupResult, Store } from '../../lib/index.js'

export type Fault = 'none' | 'error' | 'hang'

/**
 * Wraps a real store and makes it fail on demand: `error` rejects every call,
 * `hang` never answers (until the fault is lifted; then the call goes through).
 */
export class FaultyStore implements Store {
  fault: Fault = 'none'
  readonly #waiting: (() => void)[] = []
  constructor(readonly inner: Store) {}

  setFault(fault: Fault): void {
    this.fault = fault
    if (fault === 'none') for (const wake of this.#waiting.splice(0)) wake()
  }

  async #gate(): Promise<void> {
    if (this.fault === 'error') throw new Error('store is down (test fault)')
    if (this.fault === 'hang') await new Promise<void>((resolve) => this.#waiting.push(resolve))
  }

  async lookup(keys: readonly string[], requestKey: string, entryPrefix: string): Promise<LookupResult> {
    await this.#gate()
    return await this.inner.lookup(keys, requestKey, entryPrefix)
  }
  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    await this.#gate()
    return this.inner.set(key, value, ttlMs)
  }
  async delete(key: string): Promise<void> {
    await this.#gate()
    return this.inner.delete(key)
  }
  async bump(keys: readonly string[]): Promise<void> {
    await this.#gate()
    return this.inner.bump(keys)
  }
  async close(): Promise<void> {
    this.setFault('none')
    return this.inner.close()
  }
}

/** Resolves once `check` holds, polling on the event loop (bounded). */
export async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

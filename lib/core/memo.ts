/**
 * A string-keyed memo bounded by the bytes its keys and values take. The
 * oldest insertions go first (a Map iterates in insertion order), so a read
 * does no bookkeeping: the hot paths that use it (version keys, entry keys,
 * remembered versions) read far more often than they write.
 *
 * Sizes are estimates of what V8 holds: two bytes per string character (the
 * worst case) plus a fixed overhead per item for the Map slot and the objects.
 */
export class BoundedMemo<V> {
  readonly #items = new Map<string, { value: V; size: number }>()
  #bytes = 0

  /**
   * @param maxBytes upper bound on the estimated bytes held
   * @param sizeOfValue estimated bytes of a value (the key is counted here)
   */
  constructor(
    readonly maxBytes: number,
    readonly sizeOfValue: (value: V) => number
  ) {}

  get(key: string): V | undefined {
    return this.#items.get(key)?.value
  }

  set(key: string, value: V): void {
    const size = MEMO_ITEM_OVERHEAD + 2 * key.length + this.sizeOfValue(value)
    this.delete(key)
    if (size > this.maxBytes) return
    this.#items.set(key, { value, size })
    this.#bytes += size
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#items.keys().next().value as string
      this.delete(oldest)
    }
  }

  delete(key: string): void {
    const item = this.#items.get(key)
    if (item === undefined) return
    this.#items.delete(key)
    this.#bytes -= item.size
  }

  clear(): void {
    this.#items.clear()
    this.#bytes = 0
  }

  /** Items held and their estimated bytes. */
  get size(): { items: number; bytes: number } {
    return { items: this.#items.size, bytes: this.#bytes }
  }
}

/** Estimated bytes of a Map slot (with the table's slack) and its small item object, per memo item. */
export const MEMO_ITEM_OVERHEAD = 128

/** Estimated bytes of a string: a concatenation may hold a cons-string header beside its flat text. */
export const stringBytes = (text: string): number => 32 + 2 * text.length

/** Estimated bytes of a list of strings. */
export const listBytes = (list: readonly string[]): number => {
  let bytes = 16 + 8 * list.length
  for (const text of list) bytes += stringBytes(text)
  return bytes
}

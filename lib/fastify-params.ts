/**
 * The params of a Fastify (find-my-way) URL pattern: `:name` up to the next
 * `/ - . ( :`, an optional `:name?`, a regexp `:name(...)`, and `*`. `::` is an
 * escaped colon.
 */
export function fastifyRouteParams(url: string): string[] {
  const params: string[] = []
  for (let i = 0; i < url.length; i++) {
    const ch = url[i]
    if (ch === '*') {
      params.push('*')
    } else if (ch === ':') {
      if (url[i + 1] === ':') {
        i++
        continue
      }
      let j = i + 1
      while (j < url.length && !'/-.(:?;'.includes(url[j] as string)) j++
      const name = url.slice(i + 1, j)
      if (name !== '') params.push(name)
      if (url[j] === '(') j = skipRegexp(url, j)
      i = j - 1
    }
  }
  return params
}

/** Index just past the `)` closing the `(` at `open`, allowing nesting and escapes. */
function skipRegexp(url: string, open: number): number {
  let depth = 0
  for (let i = open; i < url.length; i++) {
    if (url[i] === '\\') i++
    else if (url[i] === '(') depth++
    else if (url[i] === ')' && --depth === 0) return i + 1
  }
  return url.length
}

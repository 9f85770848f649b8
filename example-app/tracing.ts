import { SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api'
import { subscribeLookups, type LookupContext } from '../lib/index.js'

/**
 * One OpenTelemetry span per cache lookup, from groupcache's lookup trace.
 * Spans start in the active context, so under an instrumented server they are
 * children of the request's span. Returns a function that detaches.
 */
export function traceLookups(tracer: Tracer = trace.getTracer('groupcache')): () => void {
  // Per-lookup state lives in a WeakMap keyed by the trace's context object.
  const spans = new WeakMap<LookupContext, Span>()
  return subscribeLookups({
    start: (lookup) => {
      const attributes = { 'groupcache.route': lookup.route, 'groupcache.store': lookup.store, 'groupcache.groups': [...lookup.groups], 'http.request.method': lookup.method }
      spans.set(lookup, tracer.startSpan(`groupcache lookup ${lookup.route}`, { attributes }))
    },
    error: (lookup) => {
      const span = spans.get(lookup)
      span?.recordException(lookup.error instanceof Error ? lookup.error : String(lookup.error))
      span?.setStatus({ code: SpanStatusCode.ERROR, message: 'store failed; served uncached' })
    },
    answered: (lookup) => {
      const span = spans.get(lookup)
      if (span === undefined) return // started before this subscriber attached
      span.setAttribute('groupcache.outcome', lookup.outcome!)
      // A miss's Cache-Status is only known once the response is stored (or not).
      if (lookup.cacheStatus !== undefined) span.setAttribute('groupcache.cache_status', lookup.cacheStatus)
      if (lookup.detail !== undefined) span.setAttribute('groupcache.detail', lookup.detail)
      span.end()
      spans.delete(lookup)
    }
  })
}

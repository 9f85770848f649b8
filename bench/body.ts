/** The body every benchmark scenario serves (about 1.4 KB of JSON). */
export const BODY = JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => ({ id: i, title: `Post number ${i}`, tags: ['cache', 'fastify'] })) })

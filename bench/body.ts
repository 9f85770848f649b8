/** The body every benchmark scenario serves (about 1.4 KB of JSON). */
export const BODY = JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => ({ id: i, title: `Post number ${i}`, tags: ['cache', 'fastify'] })) })

/** The param route of the `-param` scenarios, the shape real routes have: `/posts/:id`, two groups. */
export const POST_GROUPS = { groups: ['post:id', 'posts'] }

/** The param scenarios are loaded over /posts/1 … /posts/POSTS. */
export const POSTS = 100

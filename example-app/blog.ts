/** The example's "database": a blog in memory. Both the Fastify and the Express app serve it. */
export interface User { id: string; name: string }
export interface Post { id: string; blogId: string; authorId: string; title: string }
export interface Comment { blogId: string; text: string }

export class Blog {
  readonly users = new Map<string, User>([['1', { id: '1', name: 'Ada' }], ['2', { id: '2', name: 'Grace' }]])
  readonly posts: Post[] = [{ id: '1', blogId: '7', authorId: '1', title: 'Generations' }]
  readonly comments: Comment[] = []

  renameUser(id: string, name: string | undefined): User | undefined {
    const user = this.users.get(id)
    if (user !== undefined && name !== undefined) user.name = name
    return user
  }

  postsBy(authorId: string): Post[] {
    return this.posts.filter((p) => p.authorId === authorId)
  }

  addPost(input: Partial<Post> = {}): Post {
    const post = { id: String(this.posts.length + 1), blogId: input.blogId ?? '7', authorId: input.authorId ?? '1', title: input.title ?? 'Untitled' }
    this.posts.push(post)
    return post
  }

  post(blogId: string, postId: string): Post | undefined {
    return this.posts.find((p) => p.blogId === blogId && p.id === postId)
  }

  commentsOn(blogId: string): Comment[] {
    return this.comments.filter((c) => c.blogId === blogId)
  }

  addComment(blogId: string, text = ''): Comment {
    const comment = { blogId, text }
    this.comments.push(comment)
    return comment
  }
}

/** The function group of /feed: one group per tenant, from a request header. */
export const feedGroup = (_params: unknown, request: { headers: Record<string, string | string[] | undefined> }) => ({ feed: tenantOf(request) })

export function tenantOf(request: { headers: Record<string, string | string[] | undefined> }): string {
  return String(request.headers['x-tenant'] ?? 'public')
}

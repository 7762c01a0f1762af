/** Roles of an API key, each including the ones after it. */
export const ROLES = ['admin', 'operator', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

const rank: Record<Role, number> = { admin: 3, operator: 2, viewer: 1 };

/** admin > operator > viewer: a key satisfies a requirement when its rank is at least the required one. */
export function roleSatisfies(actual: Role, required: Role): boolean {
  return rank[actual] >= rank[required];
}

import { describe, expect, it } from '@jest/globals';
import type { Repository } from 'typeorm';
import type { AuditLogEntity } from './audit-log.entity.js';
import { AuditLogRepository } from './audit-log.repository.js';

/** Records every statement; `fail` makes the next one throw. */
function fakeRepo(): { repo: Repository<AuditLogEntity>; statements: unknown[][]; fail: { next: boolean } } {
  const statements: unknown[][] = [];
  const fail = { next: false };
  const repo = {
    query: async (_sql: string, params: unknown[]) => {
      if (fail.next) {
        fail.next = false;
        throw new Error('database down');
      }
      statements.push(params);
    },
    find: async () => [],
  } as unknown as Repository<AuditLogEntity>;
  return { repo, statements, fail };
}

const record = (i: number) => ({ actor: 'anonymous', action: 'POST /api/v1/enroll', resource: '/api/v1/enroll', status: 201, details: { i } });

describe('AuditLogRepository', () => {
  it('writes a burst of records in one statement per batch, each append resolving once stored', async () => {
    const { repo, statements } = fakeRepo();
    const audit = new AuditLogRepository(repo);
    await Promise.all(Array.from({ length: 1200 }, (_, i) => audit.append(record(i))));
    expect(statements.map((s) => (s[0] as string[]).length)).toEqual([500, 500, 200]);
  });

  it('reads its own writes: a page flushes what is pending first', async () => {
    const { repo, statements } = fakeRepo();
    const audit = new AuditLogRepository(repo);
    void audit.append(record(1));
    await audit.page(10);
    expect(statements).toHaveLength(1);
  });

  it('reports a failed write to every append of that batch only', async () => {
    const { repo, statements, fail } = fakeRepo();
    const audit = new AuditLogRepository(repo);
    fail.next = true;
    const failed = [audit.append(record(1)), audit.append(record(2))];
    await expect(Promise.all(failed)).rejects.toThrow('database down');
    await audit.append(record(3));
    expect(statements).toHaveLength(1);
  });
});

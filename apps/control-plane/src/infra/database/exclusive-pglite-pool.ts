import { PGlitePool } from 'typeorm-pglite/dist/pglite-pool.js';

type BaseConnectCallback = Parameters<PGlitePool['connect']>[0];

/**
 * PGlite is one Postgres backend in this process, so typeorm-pglite hands every query runner
 * the same "connection". Two concurrent TypeORM transactions would then interleave on one
 * session and one could commit or roll back the other's statements. This pool gives each query
 * runner exclusive use of the backend from connect() until release(), which is exactly what a
 * pool of size 1 means on real PostgreSQL.
 *
 * Invariant for callers: never wait on a second query runner while holding one (it would wait
 * forever here, and exhaust a small pool on PostgreSQL too).
 */
export class ExclusivePGlitePool extends PGlitePool {
  private tail: Promise<void> = Promise.resolve();

  override connect(callback: BaseConnectCallback): Promise<void> {
    let unlock!: () => void;
    const turn = new Promise<void>((resolve) => (unlock = resolve));
    const previous = this.tail;
    this.tail = previous.then(() => turn);
    return previous.then(() =>
      super.connect((err, client) => {
        let released = false;
        callback(err, client, () => {
          if (released) return;
          released = true;
          unlock();
        });
        if (err) unlock();
      }),
    );
  }
}

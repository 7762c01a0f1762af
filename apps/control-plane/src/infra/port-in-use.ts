import { createServer } from 'node:net';

/**
 * A listener could not bind because something else holds its port. Start-up prints the message
 * alone (no stack): it names the variable that moves the listener, which is the whole fix.
 */
export class PortInUseError extends Error {
  constructor(
    readonly variable: string,
    readonly port: number,
    readonly host: string,
  ) {
    const other = port > 0 && port < 65_535 ? port + 1 : 0;
    super(
      `port ${port} on ${host} is already in use (${variable}): stop what holds it, or set ${variable} to a free port, e.g. ${variable}=${other} npm start`,
    );
    this.name = 'PortInUseError';
  }
}

/** The error to report for a failed listen: PortInUseError for EADDRINUSE, the error itself otherwise. */
export function listenError(err: unknown, variable: string, port: number, host: string): unknown {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return code === 'EADDRINUSE' ? new PortInUseError(variable, port, host) : err;
}

/**
 * Binds and releases the port once, failing with PortInUseError when it is taken. Start-up checks
 * the HTTP port so early (before the database, broker and Nest start; Nest would also log a failed
 * listen itself, a line besides ours); a port taken after the check still fails at listen.
 */
export async function assertPortFree(port: number, host: string, variable: string): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err) => reject(listenError(err, variable, port, host)));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

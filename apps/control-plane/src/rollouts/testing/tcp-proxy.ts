import { createServer, type Server, Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /**
   * Black-holes every connection, current and new: nothing is forwarded any more in either
   * direction and closing one side is not passed on, like a network partition (no FIN, no RST).
   */
  freeze(): void;
  close(): Promise<void>;
}

/** A TCP forwarder to `host:port` whose links a test can cut silently (a hung connection). */
export async function startTcpProxy(host: string, port: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const links: { client: Socket; upstream: Socket; frozen: boolean }[] = [];
  let frozen = false;
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    const link = { client, upstream, frozen };
    links.push(link);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk: Buffer) => {
      if (!link.frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!link.frozen) client.write(chunk);
    });
    client.on('close', () => {
      if (!link.frozen) upstream.destroy();
    });
    upstream.on('close', () => {
      if (!link.frozen) client.destroy();
    });
    upstream.connect(port, host);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    freeze: () => {
      frozen = true;
      for (const link of links) link.frozen = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

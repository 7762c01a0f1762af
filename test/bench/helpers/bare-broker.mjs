// Bare aedes broker for the raw MQTT baseline: no authentication, no ACL, one in-process
// subscriber that only counts (the same in-process subscription the control plane uses).
// Speaks to its parent over IPC: {ready, port} once listening, {count} on request.
// Usage: bare-broker.mjs [FILTER] [PORT]
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

const filter = process.argv[2] ?? 'fleet/v1/devices/+/telemetry';
// Fixed port (a cluster layout restarted on the same ports); 0 picks a free one.
const port = Number(process.argv[3] ?? 0);
const broker = await Aedes.createBroker({ concurrency: 1000 });
let count = 0;
await new Promise((resolve) =>
  broker.subscribe(
    filter,
    (_packet, callback) => {
      count++;
      callback();
    },
    resolve,
  ),
);
const server = createServer((socket) => {
  socket.setNoDelay(true);
  broker.handle(socket);
});
server.listen(port, '127.0.0.1', () => process.send?.({ ready: true, port: server.address().port }));
process.on('message', (message) => {
  if (message === 'count') process.send?.({ count });
  if (message === 'stop') server.close(() => broker.close(() => process.exit(0)));
});

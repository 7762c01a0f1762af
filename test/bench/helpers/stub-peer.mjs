// Stand-in peer for simulator measurements: an aedes broker that accepts every device, and a
// `POST /api/v1/enroll` that answers credentials pointing at it. Runs in its own process so the
// simulator's memory is measured alone. IPC: {ready, httpPort, mqttPort} once listening; 'stop'.
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker({ concurrency: 1000 });
const mqttServer = createServer((socket) => {
  socket.setNoDelay(true);
  broker.handle(socket);
});
await new Promise((resolve) => mqttServer.listen(0, '127.0.0.1', resolve));
const mqttUrl = `mqtt://127.0.0.1:${mqttServer.address().port}`;
let enrolled = 0;
const http = createHttpServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method !== 'POST' || req.url !== '/api/v1/enroll') {
      res.writeHead(404).end('{}');
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const deviceId = body.id ?? `dev-${randomBytes(6).toString('hex')}`;
    enrolled++;
    const base = `http://127.0.0.1:${http.address().port}`;
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        deviceId,
        secret: randomBytes(24).toString('hex'),
        mqtt: { url: mqttUrl, urls: [mqttUrl], clientId: deviceId, username: deviceId },
        http: { baseUrl: base },
        tuf: { root: '{"signed":{}}', metadataUrl: `${base}/tuf/metadata`, targetsUrl: `${base}/tuf/targets` },
        protocolVersion: 1,
      }),
    );
  });
});
http.keepAliveTimeout = 60_000;
await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
process.send?.({ ready: true, httpPort: http.address().port, mqttPort: mqttServer.address().port });
process.on('message', (m) => {
  if (m === 'count') process.send?.({ enrolled, clients: broker.connectedClients });
  if (m === 'stop') {
    for (const c of Object.values(broker.clients)) c.close();
    http.close();
    mqttServer.close(() => broker.close(() => process.exit(0)));
    setTimeout(() => process.exit(0), 5000).unref();
  }
});
process.on('disconnect', () => process.exit(0));

// {assign: {model, version, revision}}: publishes that desired state (QoS 1, not retained) to
// every connected device, the way the control plane does for a one-wave rollout.
process.on('message', (m) => {
  if (!m || typeof m !== 'object' || !m.assign) return;
  const { model, version, revision } = m.assign;
  const ids = Object.keys(broker.clients);
  let left = ids.length;
  if (left === 0) process.send?.({ assigned: 0 });
  for (const id of ids) {
    const payload = Buffer.from(
      JSON.stringify({
        v: 1,
        model,
        version,
        revision,
        action: 'install',
        artifacts: [{ targetPath: `${model}/${version}/model.bin`, sha256: '0'.repeat(64), length: 1024, runtime: 'simulated', compatibility: {} }],
        assignedAt: new Date().toISOString(),
      }),
    );
    broker.publish({ cmd: 'publish', topic: `fleet/v1/devices/${id}/desired/${model}`, payload, qos: 1, retain: false, dup: false }, () => {
      if (--left === 0) process.send?.({ assigned: ids.length });
    });
  }
});

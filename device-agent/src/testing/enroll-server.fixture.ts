import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import { enrollRequestSchema, type DeviceCredentials, type EnrollRequest } from '@fleetline/protocol';

/**
 * Minimal stand-in for the control plane's `POST /api/v1/enroll`: checks the token, issues a
 * secret, and registers it in the shared credentials map the broker and target server fixtures use.
 */
export class EnrollServerFixture {
  private server: Server | undefined;
  baseUrl = '';
  readonly enrolled: EnrollRequest[] = [];

  constructor(
    private readonly opts: {
      token: string;
      credentials: Map<string, string>;
      mqttUrl: () => string;
      metadataUrl: () => string;
      targetsUrl: () => string;
      rootJson: string;
    },
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || req.url !== '/api/v1/enroll') return send(404, { statusCode: 404, message: 'not found', code: 'not-found' });
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return send(400, { statusCode: 400, message: 'invalid JSON', code: 'invalid-body' });
        }
        const parsed = enrollRequestSchema.safeParse(body);
        if (!parsed.success) return send(400, { statusCode: 400, message: parsed.error.issues[0]?.message ?? 'invalid', code: 'invalid-body' });
        if (parsed.data.token !== this.opts.token) return send(401, { statusCode: 401, message: 'invalid enrollment token', code: 'invalid-token' });
        const deviceId = parsed.data.id ?? `dev-${randomUUID()}`;
        if (this.opts.credentials.has(deviceId)) return send(409, { statusCode: 409, message: `device ${deviceId} exists`, code: 'device-exists' });
        const secret = randomBytes(24).toString('hex');
        this.opts.credentials.set(deviceId, secret);
        this.enrolled.push(parsed.data);
        const creds: DeviceCredentials = {
          deviceId,
          secret,
          mqtt: { url: this.opts.mqttUrl(), clientId: deviceId, username: deviceId },
          http: { baseUrl: this.baseUrl },
          tuf: { root: this.opts.rootJson, metadataUrl: this.opts.metadataUrl(), targetsUrl: this.opts.targetsUrl() },
          protocolVersion: 1,
        };
        send(201, creds);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

import { request } from 'node:http';

/**
 * Client for applications on the device: reports inference results to the local agent and reads
 * the active model versions. Batches results and never throws into the application's hot path.
 *
 *   import { AgentClient } from '@fleetline/device-agent/client';
 *   const agent = new AgentClient();                      // the agent's Unix socket (see below)
 *   const { path } = await agent.model('resnet');
 *   agent.record({ model: 'resnet', latencyMs: 12.5, ok: true, label: 'cat' });
 *
 * Where it connects: `socketPath`, else `baseUrl`, else $FLEET_AGENT_LOCAL_API_SOCKET, else
 * /run/fleet-agent/local-api.sock on Linux (the systemd unit's socket) and http://127.0.0.1:7878
 * elsewhere. The application's user must be in the agent's group to use a 0660 socket.
 */
export interface InferenceResult {
  model: string;
  latencyMs: number;
  ok: boolean;
  label?: string;
  score?: number;
  /**
   * The input given to the model (JSON-serialisable). While the agent evaluates a shadow candidate
   * it runs a sample of these on the candidate and compares answers; they never leave the device.
   */
  input?: unknown;
}

export interface ActiveModelInfo {
  model: string;
  version: string;
  previousVersion: string | null;
  path: string;
}

export interface AgentClientOptions {
  /** Unix socket of the local API. */
  socketPath?: string;
  /** Base URL of the local API over loopback TCP, e.g. http://127.0.0.1:7878. */
  baseUrl?: string;
  /** Flush batched results at this interval (ms). */
  flushIntervalMs?: number;
  /** Results kept while the agent is unreachable; older ones are dropped. */
  maxBuffered?: number;
}

interface Answer {
  status: number;
  text: string;
}

export class AgentClient {
  private readonly target: { socketPath: string } | { url: URL };
  private buffer: InferenceResult[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly maxBuffered: number;
  dropped = 0;

  constructor(opts: AgentClientOptions = {}) {
    const socketPath =
      opts.socketPath ??
      (opts.baseUrl === undefined
        ? (process.env['FLEET_AGENT_LOCAL_API_SOCKET'] ?? (process.platform === 'linux' ? '/run/fleet-agent/local-api.sock' : undefined))
        : undefined);
    this.target = socketPath !== undefined ? { socketPath } : { url: new URL(opts.baseUrl ?? 'http://127.0.0.1:7878') };
    this.maxBuffered = opts.maxBuffered ?? 10_000;
    const every = opts.flushIntervalMs ?? 1000;
    if (every > 0) {
      this.timer = setInterval(() => void this.flush().catch(() => undefined), every);
      this.timer.unref?.();
    }
  }

  /** Buffers one result; sent with the next flush. */
  record(result: InferenceResult): void {
    this.buffer.push(result);
    if (this.buffer.length > this.maxBuffered) {
      this.buffer.shift();
      this.dropped++;
    }
  }

  /** Sends buffered results now. Results stay buffered if the agent is unreachable. */
  async flush(): Promise<{ accepted: number; ignored: number }> {
    if (this.buffer.length === 0) return { accepted: 0, ignored: 0 };
    const batch = this.buffer;
    this.buffer = [];
    try {
      const res = await this.call('POST', '/v1/inferences', JSON.stringify(batch));
      if (res.status !== 202) throw new Error(`local agent answered HTTP ${res.status}: ${res.text}`);
      return JSON.parse(res.text) as { accepted: number; ignored: number };
    } catch (err: unknown) {
      this.buffer = batch.concat(this.buffer).slice(-this.maxBuffered);
      throw err;
    }
  }

  async models(): Promise<ActiveModelInfo[]> {
    const res = await this.call('GET', '/v1/models');
    if (res.status !== 200) throw new Error(`local agent answered HTTP ${res.status}`);
    return (JSON.parse(res.text) as { models: ActiveModelInfo[] }).models;
  }

  async model(name: string): Promise<ActiveModelInfo | undefined> {
    const res = await this.call('GET', `/v1/models/${encodeURIComponent(name)}`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`local agent answered HTTP ${res.status}`);
    return JSON.parse(res.text) as ActiveModelInfo;
  }

  /** node:http rather than fetch: fetch cannot reach a Unix socket without an extra dependency. */
  private call(method: 'GET' | 'POST', path: string, body?: string): Promise<Answer> {
    const where =
      'socketPath' in this.target
        ? { socketPath: this.target.socketPath, path }
        : {
            hostname: this.target.url.hostname.replace(/^\[|\]$/g, ''),
            port: this.target.url.port || 80,
            path: `${this.target.url.pathname.replace(/\/+$/, '')}${path}`,
          };
    return new Promise<Answer>((resolve, reject) => {
      const req = request(
        {
          ...where,
          method,
          headers: body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {},
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('local agent did not answer within 10 s')));
      req.on('error', reject);
      req.end(body);
    });
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush().catch(() => undefined);
  }
}

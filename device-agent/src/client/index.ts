/**
 * Client for applications on the device: reports inference results to the local agent and reads
 * the active model versions. Batches results and never throws into the application's hot path.
 *
 *   import { AgentClient } from '@fleetline/device-agent/client';
 *   const agent = new AgentClient();                      // http://127.0.0.1:7878
 *   const { path } = await agent.model('resnet');
 *   agent.record({ model: 'resnet', latencyMs: 12.5, ok: true, label: 'cat' });
 */
export interface InferenceResult {
  model: string;
  latencyMs: number;
  ok: boolean;
  label?: string;
  score?: number;
}

export interface ActiveModelInfo {
  model: string;
  version: string;
  previousVersion: string | null;
  path: string;
}

export interface AgentClientOptions {
  /** Base URL of the local API (default http://127.0.0.1:7878). */
  baseUrl?: string;
  /** Flush batched results at this interval (ms). */
  flushIntervalMs?: number;
  /** Results kept while the agent is unreachable; older ones are dropped. */
  maxBuffered?: number;
}

export class AgentClient {
  private readonly baseUrl: string;
  private buffer: InferenceResult[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly maxBuffered: number;
  dropped = 0;

  constructor(opts: AgentClientOptions = {}) {
    this.baseUrl = (opts.baseUrl ?? 'http://127.0.0.1:7878').replace(/\/+$/, '');
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
      const res = await fetch(`${this.baseUrl}/v1/inferences`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(batch),
      });
      if (!res.ok) throw new Error(`local agent answered HTTP ${res.status}: ${await res.text()}`);
      return (await res.json()) as { accepted: number; ignored: number };
    } catch (err: unknown) {
      this.buffer = batch.concat(this.buffer).slice(-this.maxBuffered);
      throw err;
    }
  }

  async models(): Promise<ActiveModelInfo[]> {
    const res = await fetch(`${this.baseUrl}/v1/models`);
    if (!res.ok) throw new Error(`local agent answered HTTP ${res.status}`);
    return ((await res.json()) as { models: ActiveModelInfo[] }).models;
  }

  async model(name: string): Promise<ActiveModelInfo | undefined> {
    const res = await fetch(`${this.baseUrl}/v1/models/${encodeURIComponent(name)}`);
    if (res.status === 404) return undefined;
    if (!res.ok) throw new Error(`local agent answered HTTP ${res.status}`);
    return (await res.json()) as ActiveModelInfo;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush().catch(() => undefined);
  }
}

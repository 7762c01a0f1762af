import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * The command runtime's inference protocol (device-agent/README.md, "Runtimes"): the agent starts
 * `{command} ...args --serve {modelPath}` once and keeps it; each request is one JSON line on its
 * stdin, `{"id": n, "input": <input>}`, and each answer one JSON line on its stdout,
 * `{"id": n, "output": <output>}` or `{"id": n, "error": "why"}`, in any order. Anything else on
 * stdout is ignored; the process ends when its stdin closes.
 */
export class CommandServer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private exited: Error | undefined;

  constructor(
    command: string,
    args: readonly string[],
    modelPath: string,
    private readonly timeoutMs: number,
  ) {
    this.child = spawn(command, [...args, '--serve', modelPath], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.resume();
    this.child.on('error', (err) => this.failAll(err));
    this.child.on('exit', (code, signal) => this.failAll(new Error(`inference command exited with ${signal ?? code}`)));
    createInterface({ input: this.child.stdout }).on('line', (line) => this.onLine(line));
  }

  infer(input: unknown): Promise<unknown> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`inference ${id} timed out after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.child.stdin.write(`${JSON.stringify({ id, input })}\n`);
    });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    const kill = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(kill);
  }

  private onLine(line: string): void {
    let answer: { id?: unknown; output?: unknown; error?: unknown };
    try {
      answer = JSON.parse(line) as typeof answer;
    } catch {
      return;
    }
    if (typeof answer.id !== 'number') return;
    const w = this.waiting.get(answer.id);
    if (!w) return;
    this.waiting.delete(answer.id);
    clearTimeout(w.timer);
    if (answer.error !== undefined) w.reject(new Error(String(answer.error).slice(0, 500)));
    else w.resolve(answer.output);
  }

  private failAll(err: Error): void {
    this.exited ??= err;
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(err);
      this.waiting.delete(id);
    }
  }
}

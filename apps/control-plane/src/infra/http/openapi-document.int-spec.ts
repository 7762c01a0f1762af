import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startTestApp, type TestApp } from '../../testing/test-app.fixture.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../../..');

function run(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [join(repoRoot, 'scripts/openapi.mjs'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => resolveRun({ code, output }));
  });
}

/** The document the running control plane serves: lint-clean, and what fleetctl's committed types were made from. */
describe('served OpenAPI document', () => {
  let testApp: TestApp;
  let dir: string;
  let documentFile: string;
  let document: { paths: Record<string, Record<string, { summary?: string; security?: unknown[]; responses: Record<string, unknown> }>> };

  beforeAll(async () => {
    testApp = await startTestApp('pglite');
    dir = await mkdtemp(join(tmpdir(), 'fleetline-openapi-test-'));
    const response = await fetch(`${testApp.baseUrl}/api/openapi.json`);
    expect(response.status).toBe(200);
    const text = await response.text();
    document = JSON.parse(text) as typeof document;
    documentFile = join(dir, 'openapi.json');
    await writeFile(documentFile, text);
  });

  afterAll(async () => {
    await testApp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('passes redocly lint with the recommended rules, offline', async () => {
    const result = await run(['lint', '--document', documentFile]);
    expect(result.output).toContain('Your API description is valid');
    expect(result.code).toBe(0);
  });

  it('documents security and the shared error shape on every operation', () => {
    const operations = Object.entries(document.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ path, method, op })));
    expect(operations.length).toBeGreaterThan(40);
    for (const { op } of operations) {
      expect(op.summary).toBeTruthy();
      expect(op.security).toBeDefined();
    }
    const abort = document.paths['/api/v1/rollouts/{id}/abort']?.['post'];
    expect(abort?.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(abort?.responses ?? {})).toEqual(expect.arrayContaining(['400', '401', '403', '404', '409']));
    expect(document.paths['/api/v1/enroll']?.['post']?.security).toEqual([]);
    expect(document.paths['/api/v1/tuf/metadata/{file}']?.['get']?.security).toEqual([{ basic: [] }]);
  });

  it("matches fleetctl's committed generated types (npm run openapi:types regenerates them)", async () => {
    const result = await run(['check-types', '--document', documentFile]);
    expect(result.output).toContain('matches the OpenAPI document');
    expect(result.code).toBe(0);
  });
});

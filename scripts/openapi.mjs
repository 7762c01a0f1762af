#!/usr/bin/env node
// The control plane's OpenAPI document, checked and turned into types, offline:
//   node scripts/openapi.mjs lint         [--document FILE]   redocly lint (recommended rules, redocly.yaml)
//   node scripts/openapi.mjs types        [--document FILE]   (re)writes apps/fleetctl/src/generated/openapi.d.ts
//   node scripts/openapi.mjs check-types  [--document FILE]   fails when that file differs from what the document gives
// Without --document the document is built by the built control plane (apps/control-plane/dist/write-openapi.js,
// no listener opened), i.e. exactly what it serves at /api/openapi.json. Run `npm run build` first.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const typesFile = join(root, 'apps/fleetctl/src/generated/openapi.d.ts');
const HEADER = "// Generated from the control plane's OpenAPI document by `npm run openapi:types`. Do not edit.\n\n";

/** The TypeScript the document gives (openapi-typescript), with the header the committed file has. */
export async function generateTypes(documentText) {
  const { default: openapiTS, astToString } = await import('openapi-typescript');
  // defaultNonNullable off: a field with a server-side default is optional in a request, as the API accepts it.
  const ast = await openapiTS(JSON.parse(documentText), { alphabetize: true, defaultNonNullable: false });
  return HEADER + astToString(ast);
}

function buildDocument(dir) {
  const file = join(dir, 'openapi.json');
  const main = join(root, 'apps/control-plane/dist/write-openapi.js');
  if (!existsSync(main)) fail(`${main} is missing: run npm run build first`);
  const run = spawnSync(process.execPath, [main, file], { stdio: 'inherit' });
  if (run.status !== 0) fail('could not build the OpenAPI document');
  return file;
}

function lint(documentFile) {
  const redocly = join(root, 'node_modules/.bin/redocly');
  const run = spawnSync(redocly, ['lint', documentFile, '--config', join(root, 'redocly.yaml'), '--format', 'stylish'], {
    stdio: 'inherit',
    // Offline: no usage telemetry, no "new version" look-up.
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  });
  return run.status ?? 1;
}

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

async function cli() {
  const [command, ...rest] = process.argv.slice(2);
  const at = rest.indexOf('--document');
  const scratch = mkdtempSync(join(tmpdir(), 'fleetline-openapi-'));
  try {
    const documentFile = at >= 0 ? resolve(rest[at + 1] ?? fail('--document needs a file')) : buildDocument(scratch);
    if (command === 'lint') {
      process.exitCode = lint(documentFile);
    } else if (command === 'types') {
      writeFileSync(typesFile, await generateTypes(readFileSync(documentFile, 'utf8')));
      process.stdout.write(`wrote ${typesFile}\n`);
    } else if (command === 'check-types') {
      const expected = await generateTypes(readFileSync(documentFile, 'utf8'));
      const committed = existsSync(typesFile) ? readFileSync(typesFile, 'utf8') : '';
      if (expected !== committed) fail(`${typesFile} is out of date with the OpenAPI document: run npm run openapi:types and commit it`);
      process.stdout.write(`${typesFile} matches the OpenAPI document\n`);
    } else {
      fail('usage: node scripts/openapi.mjs <lint|types|check-types> [--document FILE]');
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await cli();

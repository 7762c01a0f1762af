#!/usr/bin/env node
// Install size of the device agent: `npm pack` of @fleetline/device-agent and @fleetline/protocol
// (built first: npm run build), installed into a scratch project with production dependencies only
// and without the optional onnxruntime-node (a device that runs ONNX models adds it). Prints the
// tarball sizes, the installed size per package and in all; --json for the machine-readable form.
// Run: node device-agent/scripts/install-size.mjs [--json]
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const json = process.argv.includes('--json');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** Apparent size of a tree in bytes (symlinks counted as links, not followed). */
function treeBytes(path) {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of readdirSync(path)) total += treeBytes(join(path, name));
  return total;
}

function pack(workspace, into) {
  if (!existsSync(join(root, workspace, 'dist'))) throw new Error(`${workspace}/dist missing: run "npm run build" first`);
  const out = execFileSync(npm, ['pack', '--json', '--pack-destination', into], {
    cwd: join(root, workspace),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const [info] = JSON.parse(out);
  return { name: info.name, file: join(into, info.filename), packedBytes: info.size, unpackedBytes: info.unpackedSize, files: info.entryCount };
}

const work = mkdtempSync(join(tmpdir(), 'fleet-agent-install-size-'));
try {
  const packs = [pack('libs/protocol', work), pack('device-agent', work)];
  const project = join(work, 'device');
  execFileSync('mkdir', ['-p', project]);
  const dependencies = Object.fromEntries(packs.map((p) => [p.name, `file:${p.file}`]));
  // The local protocol tarball, not a registry lookup, satisfies the agent's dependency on it.
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'fleet-agent-install-size', private: true, dependencies, overrides: { '@fleetline/protocol': `file:${packs[0].file}` } }),
  );
  execFileSync(npm, ['install', '--omit=dev', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: project,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const modules = join(project, 'node_modules');
  if (existsSync(join(modules, 'onnxruntime-node'))) throw new Error('onnxruntime-node was installed despite --omit=optional');
  const packages = [];
  for (const name of readdirSync(modules)) {
    if (name.startsWith('.')) continue;
    const dirs = name.startsWith('@') ? readdirSync(join(modules, name)).map((n) => `${name}/${n}`) : [name];
    for (const d of dirs) packages.push({ name: d, bytes: treeBytes(join(modules, d)) });
  }
  packages.sort((a, b) => b.bytes - a.bytes);
  const installedBytes = treeBytes(modules);
  const result = {
    tarballs: packs.map(({ name, packedBytes, unpackedBytes, files }) => ({ name, packedBytes, unpackedBytes, files })),
    installedBytes,
    packageCount: packages.length,
    packages,
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const mb = (b) => `${(b / 1024 / 1024).toFixed(2)} MB`;
    for (const t of result.tarballs) process.stdout.write(`npm pack ${t.name}: ${t.packedBytes} bytes packed, ${t.unpackedBytes} unpacked, ${t.files} files\n`);
    process.stdout.write(
      `\ninstalled with production dependencies, onnxruntime-node excluded: ${installedBytes} bytes (${mb(installedBytes)}) in ${packages.length} packages\n`,
    );
    for (const p of packages) process.stdout.write(`  ${p.name.padEnd(28)} ${mb(p.bytes).padStart(10)}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

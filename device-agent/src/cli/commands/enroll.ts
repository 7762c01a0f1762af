import os from 'node:os';
import { readFile } from 'node:fs/promises';
import { AGENT_VERSION } from '../../agent-version.js';
import { loadAgentConfig, readCaFile } from '../../config/config.js';
import { saveCredentials } from '../../config/credentials.js';
import { enroll } from '../../config/enroll.js';
import { decideRootTrust, rootToPin } from '../../config/root-trust.js';
import { defaultRuntimes } from '../../runtime/default-runtimes.js';
import { tagsOf } from '../options.js';
import type { EnrollOptions } from '../program.js';

export async function enrollCommand(o: EnrollOptions): Promise<number> {
  const { dataDir, server } = o;
  // The root to trust is decided before anything is sent, and checked before anything is written.
  const rootFile = o.rootFile;
  const trust = decideRootTrust({
    token: o.token,
    ...(o.rootSha256 !== undefined ? { rootSha256: o.rootSha256 } : {}),
    ...(rootFile !== undefined ? { rootFile: { path: rootFile, text: await readFile(rootFile, 'utf8') } } : {}),
  });
  const config = await loadAgentConfig(dataDir);
  // The CA this enrollment is verified with is the one the device keeps trusting.
  const caPath = o.caFile ?? config.caFile;
  const ca = caPath ? await readCaFile(caPath, o.caFile ? '--ca-file' : 'caFile') : undefined;
  const runtimes = await defaultRuntimes(config);
  const t = tagsOf(o.tag);
  const answer = await enroll(
    server,
    {
      token: trust.secret,
      ...(trust.requestPin ? { rootSha256: trust.requestPin } : {}),
      ...(o.id ? { id: o.id } : {}),
      ...(o.name ? { name: o.name } : {}),
      ...(t ? { tags: t } : {}),
      inventory: {
        hardwareClass: config.hardwareClass,
        os: `${os.platform()} ${os.release()}`.slice(0, 64),
        arch: os.arch(),
        accelerators: config.accelerators,
        agentVersion: AGENT_VERSION,
        runtimes: runtimes.versions(),
      },
    },
    {
      ...(ca !== undefined ? { ca } : {}),
      totalTimeoutMs: o.enrollTimeout * 1000,
      onRetry: (r) =>
        process.stderr.write(
          `fleet-agent: ${r.error.message}; trying again in ${(r.waitMs / 1000).toFixed(1)} s (attempt ${r.attempt + 1}, ${Math.round(r.elapsedMs / 1000)} of ${o.enrollTimeout} s spent)\n`,
        ),
    },
  );
  const pinned = rootToPin(trust.trust, answer.tuf.root, server);
  if (pinned.note) process.stderr.write(`fleet-agent: ${pinned.note}\n`);
  const creds = { ...answer, tuf: { ...answer.tuf, root: pinned.root }, ...(ca !== undefined ? { tls: { ca } } : {}) };
  const target = new URL(server);
  // Plain HTTP to this machine is local development (or a proxy on the same host); anything else crossed a network.
  if (target.protocol === 'http:' && !/^(localhost|127\.[\d.]+|\[::1\])$/i.test(target.hostname)) {
    // Trust on first use of the CA: whoever answered this request chose the CA the device pins.
    process.stderr.write(
      'warning: enrolled over plain HTTP; the CA (and, without a root pin, the TUF root) were not authenticated. Enroll over https:// with --ca-file.\n',
    );
  }
  await saveCredentials(dataDir, creds);
  process.stdout.write(`enrolled as ${creds.deviceId}; credentials stored in ${dataDir}\n`);
  return 0;
}

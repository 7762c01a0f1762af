#!/usr/bin/env node
// `npm run demo`: runs the README's tour (the block marked <!-- tour: first-hour -->) as written, with
// bash, from the repository root, against the control plane at $FLEET_SERVER (default that of
// `npm start`). The simulated fleet the tour starts keeps running afterwards so the dashboard has
// something to show; Ctrl-C stops it. `--print` only prints the commands.
import { spawn } from 'node:child_process';
import { readmeTour, repoRoot } from './readme-tour.mjs';

const script = readmeTour('first-hour');
if (process.argv.includes('--print')) {
  process.stdout.write(script);
  process.exit(0);
}

// Its own process group, so the background simulator goes with it when the demo is stopped.
const shell = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd: repoRoot, stdio: 'inherit', detached: true });
const stopFleet = () => {
  try {
    process.kill(-shell.pid, 'SIGTERM');
  } catch {
    // already gone
  }
};
process.on('SIGINT', () => {
  stopFleet();
  process.exit(130);
});
process.on('SIGTERM', () => {
  stopFleet();
  process.exit(143);
});
shell.on('exit', (code) => {
  // 4 is the tour's expected end: the gate stopped 1.1.0 and it was rolled back.
  if (code === 4) {
    process.stdout.write('\nThe health gate stopped 1.1.0 in its first wave and rolled it back, as planned.\n');
  } else {
    process.stderr.write(`\nThe tour did not end as planned (exit ${code}); see the output above.\n`);
    stopFleet();
    process.exit(code === 0 ? 1 : (code ?? 1));
  }
  process.stdout.write('The simulated fleet keeps running for the dashboard (http://127.0.0.1:3000/ by default); Ctrl-C stops it.\n');
  // The shell is gone but the fleet is not: stay until a signal stops both.
  setInterval(() => undefined, 1 << 30);
});

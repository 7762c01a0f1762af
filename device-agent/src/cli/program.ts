import { Command, Option } from 'commander';
import { AGENT_VERSION } from '../agent-version.js';
import { collect, collectTag, enrollTimeoutSeconds, nonNegativeInt } from './options.js';

export interface EnrollOptions {
  server: string;
  token: string;
  dataDir: string;
  id?: string;
  name?: string;
  tag?: string[];
  caFile?: string;
  rootSha256?: string;
  rootFile?: string;
  /** Seconds enrollment may take in all, retries included (0: one attempt). */
  enrollTimeout: number;
}

export interface RunOptions {
  dataDir: string;
}

export interface StatusOptions {
  dataDir: string;
  json?: boolean;
}

export interface SimulateOptions {
  server: string[];
  token: string;
  devices: number;
  workers: number;
  tag?: string[];
  behaviour?: string[];
  telemetryInterval: number;
  download: 'full' | 'skip';
  duration?: number;
  idPrefix?: string;
  enrollConcurrency: number;
  downloadConcurrency: number;
  hardwareClass?: string;
  accelerator?: string[];
  sourceAddresses?: number;
  connectConcurrency?: number;
}

/** What each sub-command does once its arguments parsed; resolves to the process exit code. */
export interface CommandHandlers {
  enroll(o: EnrollOptions): Promise<number>;
  run(o: RunOptions): Promise<number>;
  status(o: StatusOptions): Promise<number>;
  simulate(o: SimulateOptions): Promise<number>;
}

export interface ProgramOutput {
  writeOut(s: string): void;
  writeErr(s: string): void;
}

/*
 * The handlers are imported only when their command runs: `fleet-agent run` must not pay (in
 * memory) for the enrollment, status or simulator code, and `--help` loads none of them.
 */
const lazyHandlers: CommandHandlers = {
  enroll: async (o) => (await import('./commands/enroll.js')).enrollCommand(o),
  run: async (o) => (await import('./commands/run.js')).runCommand(o),
  status: async (o) => (await import('./commands/status.js')).statusCommand(o),
  simulate: async (o) => (await import('./commands/simulate.js')).simulateCommand(o),
};

/**
 * The `fleet-agent` command tree. Parsing and help are commander's; `exitCode()` is what the
 * command that ran resolved to. Usage errors throw CommanderError (exitOverride), handled in main.
 */
export function buildProgram(handlers: CommandHandlers = lazyHandlers, output?: ProgramOutput): Command & { exitCode(): number | undefined } {
  let code: number | undefined;
  const program = new Command('fleet-agent')
    .description('Fleetline device agent: crash-safe model updates, health checks, rollback and model telemetry.')
    .version(AGENT_VERSION, '-V, --version', 'print the agent version')
    .helpCommand('help [command]', 'show help for a command')
    .addHelpText(
      'after',
      `
Exit codes:
  0   success
  1   runtime error
  2   usage error (bad or missing options, unknown command)
  78  configuration error (config.json, environment, not enrolled): restarting will not help

Run "fleet-agent <command> --help" for a command's options. Configuration: <data-dir>/config.json
and FLEET_AGENT_* environment variables (device-agent/README.md).`,
    );

  program
    .command('enroll')
    .description('Enroll this device with a control plane and store its credentials in the data dir.')
    .requiredOption('--server <url>', 'control plane base URL (https:// in production)')
    .requiredOption('--token <token>', 'enrollment token (<secret> or <secret>.<root pin>)')
    .requiredOption('--data-dir <dir>', 'agent data directory')
    .option('--id <id>', 'device id to ask for (else the server assigns one)')
    .option('--name <name>', 'human-readable device name')
    .option('--tag <key=value>', 'device tag; repeat for several', collectTag)
    .option('--ca-file <pem>', 'CA bundle to verify the server with; kept as the CA the device trusts')
    .option('--root-sha256 <hex>', 'SHA-256 of the TUF root to trust')
    .option('--root-file <root.json>', 'TUF root to trust, as a file')
    .option('--enroll-timeout <seconds>', 'give up after this many seconds, retries included (0: try once)', enrollTimeoutSeconds, 300)
    .addHelpText(
      'after',
      `
The TUF root to trust: the token's root pin (<secret>.<pin>), --root-sha256 or --root-file; a root
that does not match is refused and nothing is written.

A busy control plane (HTTP 429 rate limit, 503) or one not reachable yet is tried again, no sooner
than its Retry-After and with a jittered exponential backoff (1 s doubling, at most 60 s a wait),
until --enroll-timeout is spent; each wait is logged on stderr. Any other refusal (bad or expired
token, id taken) fails at once with the server's message, as does a certificate that does not verify.`,
    )
    .action(async (o: EnrollOptions) => {
      code = await handlers.enroll(o);
    });

  program
    .command('run')
    .description('Run the agent: stay connected, apply desired models, report and send telemetry.')
    .requiredOption('--data-dir <dir>', 'agent data directory (enrolled with "fleet-agent enroll")')
    .action(async (o: RunOptions) => {
      code = await handlers.run(o);
    });

  program
    .command('status')
    .description('Print the installed models and the state of their updates, read from the data dir.')
    .requiredOption('--data-dir <dir>', 'agent data directory')
    .option('--json', 'machine-readable JSON output')
    .action(async (o: StatusOptions) => {
      code = await handlers.status(o);
    });

  program
    .command('simulate')
    .description('Simulate a fleet of devices against a control plane (load tests, demos).')
    .requiredOption('--server <url[,url...]>', 'control plane URL; repeat or comma-separate to spread enrollment', collect)
    .requiredOption('--token <token>', 'enrollment token')
    .requiredOption('--devices <n>', 'number of simulated devices', nonNegativeInt)
    .option('--workers <n>', 'worker threads (0: in the main thread)', nonNegativeInt, 0)
    .option('--tag <key=value>', 'tag of every device; repeat for several', collectTag)
    .option('--behaviour <version:key=value,...>', 'behaviour of devices on a model version; repeat for several', collect)
    .option('--telemetry-interval <seconds>', 'seconds between telemetry messages', nonNegativeInt, 60)
    .addOption(new Option('--download <mode>', 'download artifacts (full) or only pretend to (skip)').choices(['full', 'skip']).default('full'))
    .option('--duration <seconds>', 'stop after this many seconds (else on SIGINT/SIGTERM)', nonNegativeInt)
    .option('--id-prefix <prefix>', 'prefix of the simulated device ids')
    .option('--enroll-concurrency <n>', 'enrollments in flight', nonNegativeInt, 50)
    .option('--download-concurrency <n>', 'downloads in flight (at least 1)', (v: string) => Math.max(1, nonNegativeInt(v)), 200)
    .option('--hardware-class <class>', 'hardware class the devices report')
    .option('--accelerator <name>', 'accelerator the devices report (picks variants); repeat for several', collect)
    .option('--source-addresses <n>', 'spread connections over this many loopback source addresses', nonNegativeInt)
    .option('--connect-concurrency <n>', 'MQTT connects in flight', nonNegativeInt)
    .action(async (o: SimulateOptions) => {
      code = await handlers.simulate(o);
    });

  program
    .command('version')
    .description('print the agent version')
    .action(() => {
      (output?.writeOut ?? ((s: string) => process.stdout.write(s)))(`${AGENT_VERSION}\n`);
      code = 0;
    });

  // Usage errors anywhere throw instead of exiting, so main maps them to exit code 2.
  for (const c of [program, ...program.commands]) {
    c.exitOverride().showHelpAfterError('(run with --help for usage)');
    if (output) c.configureOutput(output);
  }
  return Object.assign(program, { exitCode: () => code });
}

#!/usr/bin/env node
import { CommanderError } from 'commander';
import { ConfigError } from '../config/config.js';
import { buildProgram, type CommandHandlers, type ProgramOutput } from './program.js';

/** Exit codes: 0 ok, 1 runtime error, 2 usage error, 78 configuration error (EX_CONFIG, sysexits.h). */
export async function main(argv: string[], handlers?: CommandHandlers, output?: ProgramOutput): Promise<number> {
  const program = buildProgram(handlers, output);
  const writeErr = output?.writeErr ?? ((s: string) => process.stderr.write(s));
  if (argv.length === 0) {
    // No command at all is a usage error, but the help is the useful answer to it.
    program.outputHelp({ error: true });
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return program.exitCode() ?? 0;
  } catch (err: unknown) {
    if (err instanceof CommanderError) {
      // Commander already printed the message (or the help/version text).
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof ConfigError) {
      writeErr(`fleet-agent: ${err.message}\n`);
      return 78; // systemd can tell a config error from a crash (RestartPreventExitStatus)
    }
    writeErr(`fleet-agent: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

// Only when executed as the CLI (not when imported by tests).
if (process.argv[1] && import.meta.url === (await import('node:url')).pathToFileURL((await import('node:fs')).realpathSync(process.argv[1])).href) {
  process.exit(await main(process.argv.slice(2)));
}

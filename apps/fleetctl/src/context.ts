import type { Command } from 'commander';
import { ApiClient } from './api-client.js';
import { configPath, readSavedConfig, resolveConnection } from './config.js';
import { type Output, processOutput } from './output.js';

export interface GlobalOptions {
  server?: string;
  key?: string;
  json?: boolean;
}

/** What every API command needs: the client (server + key resolved) and the output mode. */
export interface CliContext {
  client: ApiClient;
  out: Output;
  env: NodeJS.ProcessEnv;
  /** stdout is a terminal: progress may redraw in place. */
  tty: boolean;
}

export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

export async function cliContext(command: Command, env: NodeJS.ProcessEnv = process.env): Promise<CliContext> {
  const options = globalOptions(command);
  const saved = await readSavedConfig(configPath(env));
  const connection = resolveConnection(options, env, saved);
  return { client: new ApiClient(connection), out: processOutput(options.json === true), env, tty: process.stdout.isTTY === true };
}

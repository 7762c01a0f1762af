import type { Command } from 'commander';
import { ApiClient } from '../api-client.js';
import { configPath, readSavedConfig, resolveConnection, saveConfig } from '../config.js';
import { globalOptions } from '../context.js';
import { printJson, processOutput } from '../output.js';

interface WhoAmI {
  id?: string;
  name?: string;
  role?: string;
}

export function registerLogin(program: Command): void {
  program
    .command('login')
    .description('check --server and --key against the API and save them (mode 0600) for later commands')
    .addHelpText(
      'after',
      '\nThe config file is $FLEETCTL_CONFIG, or ~/.config/fleetline/config.json.\nExample:\n  fleetctl login --server https://fleet.example.com --key flk_...',
    )
    .action(async (_options: unknown, command: Command) => {
      const options = globalOptions(command);
      const out = processOutput(options.json === true);
      const path = configPath();
      const connection = resolveConnection(options, process.env, await readSavedConfig(path));
      const who = await new ApiClient(connection).get<WhoAmI>('/api/v1/whoami');
      await saveConfig(path, { server: connection.server, key: connection.key });
      if (out.json) printJson(out, { server: connection.server, config: path, principal: who });
      else out.write(`logged in to ${connection.server} as ${who.name ?? who.id ?? 'unknown key'} (${who.role ?? 'unknown role'}); saved to ${path}`);
    });
}

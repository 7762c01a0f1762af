import { Command, Option } from 'commander';
import { registerCompletion } from './commands/completion.js';
import { registerDevices } from './commands/devices.js';
import { registerKeys } from './commands/keys.js';
import { registerLogin } from './commands/login.js';
import { registerModels } from './commands/models.js';
import { registerRollouts } from './commands/rollouts.js';
import { registerTargets } from './commands/targets.js';
import { registerTokens } from './commands/tokens.js';

export const FLEETCTL_VERSION = '0.1.0';

/** The whole command tree; main.ts runs it, tests can inspect it. */
export function buildProgram(): Command {
  const program = new Command('fleetctl')
    .description('Operate a Fleetline control plane: models, devices and staged rollouts.')
    .version(FLEETCTL_VERSION, '-V, --cli-version', 'print the fleetctl version')
    .addOption(new Option('--server <url>', 'control plane base URL').env('FLEET_SERVER'))
    .addOption(new Option('--key <key>', 'API key (sent as Authorization: Bearer)').env('FLEET_API_KEY'))
    .option('--json', 'machine-readable JSON output')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .addHelpText(
      'after',
      `
Connection: --server/--key, else FLEET_SERVER/FLEET_API_KEY, else what "fleetctl login" saved
(~/.config/fleetline/config.json, or $FLEETCTL_CONFIG).

Exit codes:
  0  success
  1  usage error (bad flags or arguments, missing server or key, unreadable file)
  2  the API refused the request (4xx); its code and message are printed
  3  server error (5xx) or the server could not be reached
  4  rollouts watch: the rollout was aborted, rolled back, cancelled or paused on failure
  5  keys/targets: metadata from the server did not verify or match --expect; nothing was signed

Examples:
  fleetctl login --server http://localhost:3000 --key flk_...
  fleetctl models create detector
  fleetctl models upload detector --version 2.1.0 --file detector.onnx --metadata '{"runtime":"onnx"}'
  fleetctl devices list --tag region=eu --online --all
  fleetctl rollouts create --model detector --version 2.1.0 --tag region=eu --waves 1,10,100 --bake 600 --watch
  fleetctl rollouts watch <id>
  source <(fleetctl completion bash)`,
    );
  registerLogin(program);
  registerModels(program);
  registerDevices(program);
  registerRollouts(program);
  registerTokens(program);
  registerKeys(program);
  registerTargets(program);
  registerCompletion(program);
  // Sub-commands inherit the error handling so usage errors anywhere exit with code 1.
  for (const command of allCommands(program))
    command.exitOverride().showHelpAfterError('(run with --help for usage)').configureHelp({ showGlobalOptions: true });
  return program;
}

function allCommands(command: Command): Command[] {
  return command.commands.flatMap((c) => [c, ...allCommands(c)]);
}

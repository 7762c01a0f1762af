/**
 * Process exit codes of fleetctl. Scripts branch on these, so they are part of the CLI's contract
 * (docs/cli.md lists them).
 */
export const ExitCode = {
  Ok: 0,
  /** Bad flags or arguments, missing server/key, unreadable input file. */
  Usage: 1,
  /** The API refused the request (4xx): validation, not found, conflict, forbidden. */
  ApiError: 2,
  /** The server failed (5xx) or could not be reached. */
  ServerError: 3,
  /** `rollouts watch`: the rollout ended aborted, rolled back or paused on failure. */
  RolloutFailed: 4,
  /** `keys`/`targets`: metadata from the server did not verify or did not match --expect; nothing was signed. */
  Untrusted: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error that ends the command with a specific exit code and a one-line message. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.Usage);
    this.name = 'UsageError';
  }
}

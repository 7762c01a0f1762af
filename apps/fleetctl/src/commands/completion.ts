import type { Command, Option } from 'commander';
import { UsageError } from '../exit-codes.js';

/** A command path ("" for the root, "rollouts create") with what may follow it on the command line. */
interface CompletionNode {
  path: string;
  words: string[];
}

/** Every command of the tree with its sub-commands and flags, read from commander's own model. */
export function completionNodes(root: Command): CompletionNode[] {
  const nodes: CompletionNode[] = [];
  const globals = root.options.flatMap(optionFlags);
  const visit = (command: Command, path: string): void => {
    const own = command === root ? [] : command.options.flatMap(optionFlags);
    const words = [...command.commands.map((c) => c.name()), ...own, ...globals, '--help'];
    nodes.push({ path, words: [...new Set(words)] });
    for (const sub of command.commands) visit(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  visit(root, '');
  return nodes;
}

/** The long form of a flag (the short one only when there is no long one): fewer, readable candidates. */
function optionFlags(option: Option): string[] {
  const flag = option.long ?? option.short;
  return flag ? [flag] : [];
}

/**
 * A bash completion script for the tree: the words before the cursor that name sub-commands
 * select a node, whose sub-commands and flags are offered. Generated from the program itself, so
 * it cannot drift from the commands; nothing runs fleetctl while completing (no network).
 */
export function bashCompletion(root: Command): string {
  const name = root.name();
  const nodes = completionNodes(root);
  const quoted = (path: string): string => `"${path}"`;
  const paths = nodes.filter((n) => n.path).map((n) => quoted(n.path));
  return `# ${name} completion for bash: source <(${name} completion bash)
_${name}_completion() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" word next i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    next="\${path:+$path }$word"
    case "$next" in
      ${paths.join(' | ')}) path="$next" ;;
    esac
  done
  local words=""
  case "$path" in
${nodes.map((n) => `    ${quoted(n.path)}) words="${n.words.join(' ')}" ;;`).join('\n')}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _${name}_completion ${name}
`;
}

/** zsh runs the bash script through its bash-completion compatibility layer (bashcompinit). */
export function zshCompletion(root: Command): string {
  const name = root.name();
  return `#compdef ${name}
# ${name} completion for zsh: source <(${name} completion zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(root).split('\n').slice(1).join('\n')}`;
}

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (bash or zsh)')
    .argument('<shell>', 'bash or zsh')
    .addHelpText(
      'after',
      `
Load it in the current shell, or add the line to ~/.bashrc or ~/.zshrc:
  source <(fleetctl completion bash)
  source <(fleetctl completion zsh)`,
    )
    .action((shell: string) => {
      if (shell === 'bash') process.stdout.write(bashCompletion(program));
      else if (shell === 'zsh') process.stdout.write(zshCompletion(program));
      else throw new UsageError(`completion: unknown shell "${shell}" (bash or zsh)`);
    });
}

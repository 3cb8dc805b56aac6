import type { Command } from 'commander';

/** Every command path ('' for the top level, 'nodes', 'nodes ls' ...) with the words that may follow it. */
function table(program: Command): { words: Map<string, string[]>; valueOptions: Set<string> } {
  const words = new Map<string, string[]>();
  const valueOptions = new Set<string>();
  const walk = (cmd: Command, path: string) => {
    const opts = cmd.options.flatMap((o) => {
      if (o.required || o.optional) for (const f of [o.long, o.short]) if (f) valueOptions.add(f);
      return o.long ? [o.long] : [];
    });
    words.set(path, [...cmd.commands.map((c) => c.name()), ...opts, '--help']);
    for (const sub of cmd.commands) walk(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  walk(program, '');
  return { words, valueOptions };
}

/**
 * `spotlift completion bash`: commands, subcommands and options, read from the program itself so that it never
 * falls behind. Words after an option that takes a value are skipped when finding the command path. Ids (nodes,
 * workloads ...) are not completed: that would call the orchestrator on every TAB.
 */
export function bashCompletion(program: Command): string {
  const { words, valueOptions } = table(program);
  const name = program.name();
  const cases = [...words.entries()].map(([path, w]) => `    '${path}') words='${w.join(' ')}' ;;`).join('\n');
  return `# bash completion for ${name}; load with: source <(${name} completion bash)
_${name}_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" skip="" w words i
  local value_opts=" ${[...valueOptions].sort().join(' ')} "
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ -n "$skip" ]]; then skip=""; continue; fi
    if [[ "$value_opts" == *" $w "* ]]; then skip=1; continue; fi
    [[ "$w" == -* ]] && continue
    case "\${path:+$path }$w" in
${[...words.keys()]
  .filter((p) => p)
  .map((p) => `      '${p}') path="${p}" ;;`)
  .join('\n')}
    esac
  done
  if [[ -n "$skip" ]]; then COMPREPLY=($(compgen -f -- "$cur")); return; fi
  case "$path" in
${cases}
    *) words='' ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _${name}_complete ${name}
`;
}

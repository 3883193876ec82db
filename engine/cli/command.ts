/**
 * The shape of a `dlm` sub-command and the parsing of its flags: each command declares its options once,
 * and gets typed values, `--help`, and a usage error (exit code 2) for an unknown flag or a bad value.
 */
import { parseArgs } from 'node:util';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export type OptionType = 'string' | 'boolean' | 'integer' | 'number' | { choices: readonly string[] };

export interface OptionSpec {
  type: OptionType;
  description: string;
  /** Shown in the help as `--name <valueName>`. */
  valueName?: string;
  /** Shown in the help; the command applies it. */
  defaultText?: string;
}

export type OptionSpecs = Record<string, OptionSpec>;

export type OptionValue = string | number | boolean;
export type OptionValues = Record<string, OptionValue | undefined>;

export interface ParsedArgs {
  options: OptionValues;
  positionals: string[];
}

export interface CliCommand {
  name: string;
  /** One line for `dlm help`. */
  summary: string;
  /** The synopsis after `dlm <name>`, e.g. `--model <m> --length <n> [options]`. */
  synopsis: string;
  /** Paragraphs after the synopsis: what it does, examples. */
  details?: string;
  options: OptionSpecs;
  /** Names of positional arguments, for the help; none when empty. */
  positionals?: { name: string; description: string; required: boolean }[];
  run(args: ParsedArgs): Promise<number>;
}

/** A mistake in the command line; the message is shown with a pointer to `--help`, and the exit code is 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const HELP_OPTION: OptionSpec = { type: 'boolean', description: 'Show this help.' };

export function parseCommandLine(command: CliCommand, argv: string[]): ParsedArgs | 'help' {
  const specs: OptionSpecs = { ...command.options, help: HELP_OPTION };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(specs).map(([name, spec]) => [
          name,
          { type: spec.type === 'boolean' ? ('boolean' as const) : ('string' as const), ...(name === 'help' ? { short: 'h' } : {}) },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, '.'));
  }
  if (parsed.values.help) return 'help';
  const expected = command.positionals ?? [];
  if (parsed.positionals.length > expected.length) {
    throw new UsageError(`Unexpected argument '${parsed.positionals[expected.length]}'.`);
  }
  const missing = expected.slice(parsed.positionals.length).find((p) => p.required);
  if (missing) throw new UsageError(`Missing argument <${missing.name}>.`);

  const options: OptionValues = {};
  for (const [name, spec] of Object.entries(command.options)) {
    const raw = parsed.values[name];
    if (raw === undefined) continue;
    options[name] = typeof raw === 'boolean' ? raw : convertValue(name, spec.type, raw as string);
  }
  return { options, positionals: parsed.positionals };
}

function convertValue(name: string, type: OptionType, raw: string): OptionValue {
  if (type === 'string') return raw;
  if (type === 'integer') {
    if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`--${name} expects an integer, got '${raw}'.`);
    return Number.parseInt(raw, 10);
  }
  if (type === 'number') {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${name} expects a number, got '${raw}'.`);
    return value;
  }
  if (typeof type === 'object') {
    if (!type.choices.includes(raw)) {
      throw new UsageError(`--${name} must be one of ${type.choices.join(', ')}; got '${raw}'.`);
    }
    return raw;
  }
  throw new Error(`option --${name} has no value type`);
}

export function formatHelp(command: CliCommand): string {
  const lines = [`Usage: dlm ${command.name} ${command.synopsis}`, '', command.summary];
  if (command.details) lines.push('', command.details);
  if (command.positionals?.length) {
    lines.push('', 'Arguments:');
    for (const p of command.positionals) lines.push(`  <${p.name}>`.padEnd(28) + p.description);
  }
  lines.push('', 'Options:');
  for (const [name, spec] of Object.entries({ ...command.options, help: HELP_OPTION })) {
    const value = spec.type === 'boolean' ? '' : ` <${spec.valueName ?? valueNameOf(spec.type)}>`;
    const head = `  --${name}${value}`;
    const text = spec.description + (spec.defaultText ? ` (default: ${spec.defaultText})` : '');
    lines.push(head.length < 28 ? head.padEnd(28) + text : `${head}\n${' '.repeat(28)}${text}`);
  }
  return lines.join('\n') + '\n';
}

function valueNameOf(type: OptionType): string {
  if (typeof type === 'object') return type.choices.join('|');
  return type === 'integer' || type === 'number' ? 'n' : 'value';
}

/** Reads an option that the command declared with a numeric type. */
export function numberOption(options: OptionValues, name: string): number | undefined {
  const value = options[name];
  return typeof value === 'number' ? value : undefined;
}

export function stringOption(options: OptionValues, name: string): string | undefined {
  const value = options[name];
  return typeof value === 'string' ? value : undefined;
}

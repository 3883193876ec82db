/**
 * The `dlm` commands and the dispatch to them. A new command is a module exporting a `CliCommand`, listed
 * here.
 */
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, formatHelp, parseCommandLine, type CliCommand } from './command';
import { serveCommand } from './serveCommand';
import { infillCommand } from './infillCommand';
import { benchCommand } from './benchCommand';
import { buildBuiltinCommand } from './buildBuiltinCommand';
import { convertCommand } from './convertCommand';
import { profileDepthCommand } from './profileDepthCommand';
import { makeCheckpointCommand } from './makeCheckpointCommand';
import { evalCommand } from './eval';

export const COMMANDS: readonly CliCommand[] = [serveCommand, infillCommand, benchCommand, buildBuiltinCommand, convertCommand, makeCheckpointCommand, evalCommand, profileDepthCommand];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 4;
  return [
    'Usage: dlm <command> [options]',
    '',
    'Code infilling with a local diffusion language model.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    `  ${'help'.padEnd(width)}Show help for a command: dlm help <command>`,
    '',
    "Run 'dlm <command> --help' for a command's options.",
    '',
  ].join('\n');
}

/** Runs the command line `argv` (without node and the script) and returns the process exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = name === 'help' ? rest[0] : undefined;
    if (topic === undefined) {
      process.stdout.write(overview());
      return name === undefined ? EXIT_USAGE : EXIT_OK;
    }
    const command = COMMANDS.find((c) => c.name === topic);
    if (!command) return usageFailure(`Unknown command '${topic}'.`, undefined);
    process.stdout.write(formatHelp(command));
    return EXIT_OK;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) return usageFailure(`Unknown command '${name}'.`, undefined);
  try {
    const parsed = parseCommandLine(command, rest);
    if (parsed === 'help') {
      process.stdout.write(formatHelp(command));
      return EXIT_OK;
    }
    return await command.run(parsed);
  } catch (error) {
    if (error instanceof UsageError) return usageFailure(error.message, command);
    process.stderr.write(`dlm ${command.name}: ${(error as Error).message}\n`);
    if (process.env.DLM_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
    return EXIT_FAILURE;
  }
}

function usageFailure(message: string, command: CliCommand | undefined): number {
  const where = command ? `dlm ${command.name}` : 'dlm';
  process.stderr.write(`${where}: ${message}\nRun '${where} --help' for usage.\n`);
  return EXIT_USAGE;
}

import { readFileSync } from 'node:fs';
import { ErrorCodes } from '../../common/protocol';
import { Engine } from '../service/engine';
import { EngineError } from '../service/errors';
import { JobCancelledError } from '../service/scheduler';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, numberOption, stringOption, type CliCommand, type OptionValues } from './command';
import { defaultCacheDir } from './cacheDir';
import { DECODING_FLAGS, DEVICE_FLAG, decodingOverrides, deviceOption } from './decodingFlags';
import { checkServerFlags, runServerInfill, SERVER_FLAGS } from './remoteInfill';
import { createProgressView, type ProgressView } from './visual';

const DEFAULT_LENGTH = 32;

export const infillCommand: CliCommand = {
  name: 'infill',
  summary: 'Fill a hole between a prefix and a suffix with a diffusion model.',
  synopsis: '(--model <m> | --server <url> [--api openai|sglang] [--server-model <name>]) (--prefix <text> --suffix <text> | --file <f> --line <l> [--column <c> | --select-lines <n>]) [options]',
  details: [
    'The canvas is [prefix][MASK x length][suffix]. With --file, the hole is at line:column (1-based), or',
    'replaces --select-lines whole lines from --line on (the fill is then as long as the lines it replaces,',
    'in tokens, unless --length says otherwise). Context beyond the model\'s canvas is dropped by whole lines',
    '(from the start of the prefix and the end of the suffix). Prints the fill, or the result with its stats as JSON.',
    '',
    'With --server the hole is filled by an SGLang or vLLM server instead (README, "Team server"): the code goes',
    "into the model family's fill-in-the-middle prompt, the answer is cut at the hole's end; the API key is read",
    'from DLM_SERVER_API_KEY. Plain HTTP is refused except to this machine (--allow-insecure-http overrides).',
    '',
    'Examples:',
    "  dlm infill --model builtin --file media/examples/fizzbuzz.py --line 3 --select-lines 2 --visual",
    "  dlm infill --model ./my-model --prefix $'def add(a, b):\\n    ' --suffix $'\\n' --length 16 --json",
    "  dlm infill --server http://127.0.0.1:30000 --api sglang --file app.py --line 12 --select-lines 3",
  ].join('\n'),
  options: {
    model: { type: 'string', description: 'builtin, a model folder, a Hugging Face checkpoint folder or id.', defaultText: 'builtin' },
    prefix: { type: 'string', description: 'Text before the hole.' },
    suffix: { type: 'string', description: 'Text after the hole.' },
    file: { type: 'string', description: 'Take the prefix and suffix from this file.' },
    line: { type: 'integer', description: 'Line of the hole in --file (1-based).' },
    column: { type: 'integer', description: 'Column of the hole in --line (1-based).', defaultText: '1' },
    'select-lines': { type: 'integer', description: 'Cut this many lines from --line on and fill them.' },
    length: { type: 'integer', description: 'Tokens to fill.', defaultText: `${DEFAULT_LENGTH}, or the cut lines' tokens` },
    'cold-budget-ms': { type: 'number', description: 'Also cut the context so a cold request is expected within this many ms here (as dlm.coldRequestBudgetMs).' },
    ...DECODING_FLAGS,
    ...DEVICE_FLAG,
    visual: { type: 'boolean', description: 'Redraw the canvas as it denoises (plain progress lines when not a terminal).' },
    json: { type: 'boolean', description: 'Print the result with its stats as JSON.' },
    verbose: { type: 'boolean', description: 'Log what the engine does to stderr.' },
    'cache-dir': { type: 'string', description: 'Where downloaded and converted models are kept.' },
    ...SERVER_FLAGS,
  },
  run: runInfill,
};

interface Hole {
  prefix: string;
  suffix: string;
  /** The text the hole replaces (sizes the default fill length). */
  cut?: string;
}

/** The prefix and suffix from the flags; a usage error when they do not describe one hole. */
export function holeFromOptions(options: OptionValues): Hole {
  const file = stringOption(options, 'file');
  const prefix = stringOption(options, 'prefix');
  const suffix = stringOption(options, 'suffix');
  if (file === undefined) {
    for (const flag of ['line', 'column', 'select-lines']) {
      if (options[flag] !== undefined) throw new UsageError(`--${flag} goes with --file.`);
    }
    if (prefix === undefined && suffix === undefined) throw new UsageError('Give --prefix and/or --suffix, or --file with --line.');
    return { prefix: prefix ?? '', suffix: suffix ?? '' };
  }
  if (prefix !== undefined || suffix !== undefined) throw new UsageError('Use either --file or --prefix/--suffix, not both.');
  const line = numberOption(options, 'line');
  if (line === undefined) throw new UsageError('--file needs --line.');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`Cannot read --file ${file}: ${(error as Error).message}`);
  }
  const lines = text.split('\n');
  if (line < 1 || line > lines.length) throw new UsageError(`--line must be in 1..${lines.length} for ${file}; got ${line}.`);
  const offsetOfLine = (l: number) => lines.slice(0, l - 1).reduce((n, s) => n + s.length + 1, 0);
  const selected = numberOption(options, 'select-lines');
  if (selected !== undefined) {
    if (options.column !== undefined) throw new UsageError('--select-lines cuts whole lines; leave out --column.');
    if (selected < 1 || line + selected - 1 > lines.length) {
      throw new UsageError(`--select-lines must be in 1..${lines.length - line + 1} from line ${line}; got ${selected}.`);
    }
    const start = offsetOfLine(line);
    // The newline ending the last cut line stays in the suffix.
    const end = offsetOfLine(line + selected) - 1;
    return { prefix: text.slice(0, start), suffix: text.slice(end), cut: text.slice(start, end) };
  }
  const column = numberOption(options, 'column') ?? 1;
  const lineLength = [...lines[line - 1]].length;
  if (column < 1 || column > lineLength + 1) {
    throw new UsageError(`--column must be in 1..${lineLength + 1} on line ${line}; got ${column}.`);
  }
  const at = offsetOfLine(line) + [...lines[line - 1]].slice(0, column - 1).join('').length;
  return { prefix: text.slice(0, at), suffix: text.slice(at) };
}

async function runInfill({ options }: { options: OptionValues }): Promise<number> {
  const hole = holeFromOptions(options);
  if (checkServerFlags(options)) return runServerInfill(options, hole);
  const overrides = decodingOverrides(options);
  const verbose = options.verbose === true;
  const engine = new Engine({
    cacheDir: stringOption(options, 'cache-dir') ?? defaultCacheDir(),
    log: (level, message) => {
      if (verbose || level === 'warn' || level === 'error') process.stderr.write(`[dlm ${level}] ${message}\n`);
    },
  });
  let view: ProgressView | undefined;
  let job: ReturnType<Engine['infill']> | undefined;
  // Ctrl-C stops a running fill between steps (and restores the terminal); before that it just exits.
  const interrupt = () => (job ? job.cancel('cancelled') : process.exit(130));
  process.once('SIGINT', interrupt);
  try {
    const info = await engine.loadModel({ model: stringOption(options, 'model') ?? 'builtin', device: deviceOption(options) });
    const length =
      numberOption(options, 'length') ??
      (hole.cut !== undefined ? Math.max(1, engine.tokenize(info.modelId, hole.cut).length) : DEFAULT_LENGTH);
    // Created once the model is loaded, so its clock times the fill alone.
    const progressView = options.visual ? createProgressView(process.stdout, hole, process.stderr) : undefined;
    view = progressView;
    job = engine.infill(
      {
        modelId: info.modelId, prefix: hole.prefix, suffix: hole.suffix, length, options: overrides, fitToModel: true,
        coldBudgetMs: numberOption(options, 'cold-budget-ms'),
      },
      { onProgress: progressView && ((progress) => progressView.update(progress)) },
    );
    const result = await job.result;
    view?.close();
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ model: info.name, ...result }, null, 2)}\n`);
    } else {
      if (!(view && process.stdout.isTTY)) process.stdout.write(result.text.endsWith('\n') ? result.text : `${result.text}\n`);
      const s = result.stats;
      process.stderr.write(
        `${info.name} on ${s.device}, cache ${s.cache}: ${s.genTokens} tokens in ${s.steps} steps, ` +
          `${s.graphCalls} graph calls, ${s.ms} ms, ${s.tokensPerSecond} tokens/s\n`,
      );
    }
    return EXIT_OK;
  } catch (error) {
    view?.close();
    if (error instanceof JobCancelledError) {
      process.stderr.write(`dlm infill: ${error.message}\n`);
      return 130;
    }
    if (error instanceof EngineError) {
      process.stderr.write(`dlm infill: ${error.message}\n`);
      // A request the engine refuses (bad option value, canvas too long) is a mistake on the command line.
      const refused = error.code === ErrorCodes.InvalidParams || error.code === ErrorCodes.CanvasTooLong;
      return refused ? EXIT_USAGE : EXIT_FAILURE;
    }
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
    await engine.shutdown();
  }
}

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CACHE_MODES, type CacheMode } from '../../common/decodingOptions';
import { PROMPT_REUSE_MODES, type PromptReuseMode } from '../../common/protocol';
import { BENCH_MODEL_NAMES, benchModelDescription, ensureGeometryModel, geometryGraph, GEOMETRY_PRECISIONS, type BenchModelName, type GeometryPrecision } from '../bench/benchModels';
import { BENCH_CANVASES, INLINE_CANVAS } from '../bench/benchCanvases';
import { CHECKPOINT_GEOMETRY_NAMES, type CheckpointGeometryName } from '../bench/randomCheckpoint';
import { formatBenchTable, runBench } from '../bench/runBench';
import { formatStepCostTable, runStepCostBench } from '../bench/stepCostBench';
import { EDITOR_CANVAS, formatTypingReport, runTypingBench, TYPING_SYNTHETIC_MODEL } from '../bench/typingBench';
import { defaultSourcePath } from '../prepare/sourceTexts';
import { EXIT_OK, UsageError, numberOption, stringOption, type CliCommand, type OptionValues } from './command';
import { DECODING_FLAGS, DEVICE_FLAG, decodingOverrides, deviceOption } from './decodingFlags';

const { cache: _cacheFlag, ...decodingFlagsWithoutCache } = DECODING_FLAGS;

/** A comma-separated selection from `known`, or all of them for 'all' or when absent. */
function selection<T extends string>(options: OptionValues, flag: string, known: readonly T[]): T[] {
  const raw = stringOption(options, flag);
  if (raw === undefined || raw === 'all') return [...known];
  const picked = raw.split(',').map((s) => s.trim());
  for (const item of picked) {
    if (!known.includes(item as T)) throw new UsageError(`--${flag} takes ${known.join(', ')} or all (comma-separated); got '${item}'.`);
  }
  return picked as T[];
}

export const benchCommand: CliCommand = {
  name: 'bench',
  summary: 'Measure every cache mode against none on random-weight models, synthetic or real-sized (tokens/s, speedup, agreement).',
  synopsis: '[--model tiny,medium | --geometry qwen2.5-0.5b] [--canvas 1024+32,128+256] [--cache decode,greedy,prefill] [--json <file>] [options]',
  details: [
    'Models (random weights, built once into --models-dir):',
    ...BENCH_MODEL_NAMES.map((name) => `  ${benchModelDescription(name)}`),
    `--geometry runs real models' geometries instead (${CHECKPOINT_GEOMETRY_NAMES.join(', ')}): a Hugging Face checkpoint`,
    'with random weights (dlm make-checkpoint), converted once by the real converter to int4 weights with float32',
    `activations, on the ${INLINE_CANVAS.name} canvas unless --canvas says otherwise.`,
    'Canvases: prompt tokens + fill tokens, steps = ' + [...BENCH_CANVASES, INLINE_CANVAS].map((c) => `${c.steps} for ${c.name}`).join(', ') + '.',
    'After a warm-up, the modes run interleaved for --rounds rounds; speed is the median.',
    'The JSON file holds {"runs":[{model, device, promptTokens, genTokens, steps, cache, tokensPerSecond,',
    'speedupVsNone, agreementVsNone, ...}]}.',
    '',
    '--typing replays typing instead: regions of real source files (--source) typed out keystroke by keystroke,',
    'one inline completion per debounced keystroke, each run with every --reuse mode and without reuse',
    `(interleaved). --model is then ${TYPING_SYNTHETIC_MODEL} (the built-in geometry, random weights), builtin or a model`,
    'folder (readied for depth-wise reuse first if that mode runs); --cache picks one cache mode for all sides',
    '(default pd, the fastest without cross-request reuse). The JSON file holds {"typing":{requests, agreement,',
    'reuse:{firstPartialMs, finalMs, requestsPerSecond}, noReuse:{...}, coldMs, warmUp, depthwise, ...}} (medians).',
    '',
    '--step-cost profiles one step of one --geometry instead: graph variants (full logits; the stats head; int4',
    'accuracy_level 4; explicit threads) side by side, the graph alone and whole prefill fills, each checked',
    'against the full-logits graph (top-1 agreement and probability). The JSON file holds {"stepCost":{rows:[...]}}.',
  ].join('\n'),
  options: {
    model: { type: 'string', description: `Models to run: ${BENCH_MODEL_NAMES.join(', ')} or all.`, defaultText: 'all, unless --geometry' },
    geometry: { type: 'string', description: `Real geometries with random weights: ${CHECKPOINT_GEOMETRY_NAMES.join(', ')} (comma-separated).` },
    precision: { type: { choices: [...GEOMETRY_PRECISIONS] }, description: 'Weights a --geometry is converted to.', defaultText: 'int4' },
    canvas: { type: 'string', description: `Canvases: ${[...BENCH_CANVASES, INLINE_CANVAS].map((c) => c.name).join(', ')} or all.`, defaultText: `${BENCH_CANVASES.map((c) => c.name).join(',')}; ${INLINE_CANVAS.name} with --geometry` },
    cache: { type: 'string', description: `Cache modes compared with none: ${CACHE_MODES.join(', ')} or all.`, defaultText: 'all' },
    rounds: { type: 'integer', description: 'Interleaved rounds per canvas.', defaultText: '1' },
    json: { type: 'string', valueName: 'file', description: 'Also write the runs to this JSON file.' },
    'models-dir': { type: 'string', description: 'Where the synthetic models are kept.', defaultText: '.cache/bench-models' },
    typing: { type: 'boolean', description: 'Replay typing: prefix reuse on vs off.' },
    'step-cost': { type: 'boolean', description: 'Profile one step of a --geometry: graph variants side by side.' },
    sessions: { type: 'integer', description: 'Typing: sessions (regions typed out).', defaultText: '4' },
    chars: { type: 'integer', description: 'Typing: characters typed per session.', defaultText: '80' },
    debounce: { type: 'integer', description: 'Typing: debounce in ms.', defaultText: String(EDITOR_CANVAS.debounceMs) },
    'cold-budget-ms': { type: 'number', description: 'Typing: cut every canvas to this cold-request budget, as dlm.coldRequestBudgetMs does.', defaultText: 'off' },
    source: { type: 'string', valueName: 'path', description: 'Typing: source files to type from.', defaultText: 'held-out files, else engine/' },
    reuse: {
      type: 'string',
      description: `Typing: reuse modes compared with none: ${PROMPT_REUSE_MODES.join(', ')} or all; the first is the report's reuse.`,
      defaultText: 'all',
    },
    ...decodingFlagsWithoutCache,
    ...DEVICE_FLAG,
  },
  async run({ options }) {
    if (options['cold-budget-ms'] !== undefined && !options.typing) throw new UsageError('--cold-budget-ms is for --typing.');
    if (options.precision !== undefined && (options.geometry === undefined || options['step-cost'])) {
      throw new UsageError('--precision picks the weights of a --geometry model (--step-cost compares its own).');
    }
    if (options.typing) return runTyping(options);
    if (options['step-cost']) return runStepCost(options);
    const geometries = options.geometry === undefined ? [] : selection<CheckpointGeometryName>(options, 'geometry', CHECKPOINT_GEOMETRY_NAMES);
    const models = geometries.length && options.model === undefined ? [] : selection<BenchModelName>(options, 'model', BENCH_MODEL_NAMES);
    const canvases = [...BENCH_CANVASES, INLINE_CANVAS];
    const canvasNames =
      options.canvas === undefined
        ? (geometries.length ? [INLINE_CANVAS] : BENCH_CANVASES).map((c) => c.name)
        : selection(options, 'canvas', canvases.map((c) => c.name));
    const modes = selection<CacheMode>(options, 'cache', CACHE_MODES);
    const rounds = numberOption(options, 'rounds') ?? 1;
    if (rounds < 1) throw new UsageError(`--rounds must be at least 1; got ${rounds}.`);
    const jsonFile = stringOption(options, 'json');
    const runs = await runBench({
      models: [...models, ...geometries],
      canvases: canvases.filter((c) => canvasNames.includes(c.name)),
      modes,
      device: deviceOption(options),
      rounds,
      modelsDir: path.resolve(stringOption(options, 'models-dir') ?? path.join('.cache', 'bench-models')),
      geometryPrecision: geometryPrecision(options),
      overrides: decodingOverrides(options),
      log: (message) => process.stderr.write(`[bench] ${message}\n`),
    });
    process.stdout.write(formatBenchTable(runs));
    if (jsonFile) {
      writeFileSync(jsonFile, `${JSON.stringify({ runs }, null, 2)}\n`);
      process.stderr.write(`[bench] wrote ${jsonFile}\n`);
    }
    return EXIT_OK;
  },
};

/** `--precision`, checked against GEOMETRY_PRECISIONS by the flag's choices. */
function geometryPrecision(options: OptionValues): GeometryPrecision | undefined {
  return stringOption(options, 'precision') as GeometryPrecision | undefined;
}

async function runTyping(options: OptionValues): Promise<number> {
  const source = stringOption(options, 'source') ?? defaultSourcePath();
  if (!source) throw new UsageError('No source files to type from: pass --source.');
  const cache = stringOption(options, 'cache');
  const modes = cache === undefined ? [] : selection<CacheMode>(options, 'cache', CACHE_MODES);
  if (modes.length > 1) throw new UsageError('With --typing, --cache takes one cache mode.');
  const modelsDir = path.resolve(stringOption(options, 'models-dir') ?? path.join('.cache', 'bench-models'));
  const log = (message: string) => process.stderr.write(`[bench --typing] ${message}\n`);
  const geometries = options.geometry === undefined ? [] : selection<CheckpointGeometryName>(options, 'geometry', CHECKPOINT_GEOMETRY_NAMES);
  if (geometries.length > 1 || (geometries.length && options.model !== undefined)) {
    throw new UsageError('With --typing, give one model: --model or one --geometry.');
  }
  const report = await runTypingBench({
    model: geometries.length
      ? await ensureGeometryModel(geometries[0], modelsDir, log, geometryGraph(geometryPrecision(options)))
      : (stringOption(options, 'model') ?? TYPING_SYNTHETIC_MODEL),
    device: deviceOption(options),
    source,
    sessions: numberOption(options, 'sessions') ?? 4,
    charsPerSession: numberOption(options, 'chars') ?? 80,
    debounceMs: numberOption(options, 'debounce') ?? EDITOR_CANVAS.debounceMs,
    coldBudgetMs: numberOption(options, 'cold-budget-ms'),
    seed: 0,
    overrides: { ...decodingOverrides(options), ...(modes.length ? { cache: modes[0] } : {}) },
    reuseModes: selection<PromptReuseMode>(options, 'reuse', PROMPT_REUSE_MODES),
    modelsDir,
    log,
  });
  process.stdout.write(formatTypingReport(report));
  const jsonFile = stringOption(options, 'json');
  if (jsonFile) {
    writeFileSync(jsonFile, `${JSON.stringify({ typing: report }, null, 2)}\n`);
    process.stderr.write(`[bench --typing] wrote ${jsonFile}\n`);
  }
  return EXIT_OK;
}

async function runStepCost(options: OptionValues): Promise<number> {
  const geometries = options.geometry === undefined ? [] : selection<CheckpointGeometryName>(options, 'geometry', CHECKPOINT_GEOMETRY_NAMES);
  if (geometries.length !== 1) throw new UsageError('--step-cost needs one --geometry.');
  const rounds = numberOption(options, 'rounds') ?? 3;
  if (rounds < 1) throw new UsageError(`--rounds must be at least 1; got ${rounds}.`);
  const report = await runStepCostBench({
    geometry: geometries[0],
    modelsDir: path.resolve(stringOption(options, 'models-dir') ?? path.join('.cache', 'bench-models')),
    rounds,
    overrides: decodingOverrides(options),
    log: (message) => process.stderr.write(`[bench --step-cost] ${message}\n`),
  });
  process.stdout.write(formatStepCostTable(report));
  const jsonFile = stringOption(options, 'json');
  if (jsonFile) {
    writeFileSync(jsonFile, `${JSON.stringify({ stepCost: report }, null, 2)}\n`);
    process.stderr.write(`[bench --step-cost] wrote ${jsonFile}\n`);
  }
  return EXIT_OK;
}

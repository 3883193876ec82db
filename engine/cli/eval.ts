/**
 * `dlm eval`: infill quality on held-out code. Holes of one line and of 2-4 lines are cut at seeded random
 * places in the held-out files (engine/training/eval/heldout-files.jsonl: whole files kept out of the built-in
 * model's training), filled with the true token length given, and scored by exact match and character
 * similarity (1 - normalized Levenshtein). Rows: the model under each cache mode, the same architecture at
 * its untrained initialisation, and two baselines (an empty fill; the lines just above the hole repeated).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readManifest } from '../model/manifest';
import { writeModelFolder } from '../model/modelFolder';
import { resolveModel } from '../store/modelManager';
import { CACHE_MODES, type CacheMode, type DecodingOptions } from '../../common/decodingOptions';
import { Engine } from '../service/engine';
import {
  fitToCanvas,
  makeCases,
  readEvalFiles,
  repeatLinesAbove,
  score,
  type HoleKind,
  type InfillCase,
  type Scores,
} from '../training/infillEval';
import { UntrainedWeights } from '../training/untrainedWeights';
import { EXIT_OK, UsageError, numberOption, stringOption, type CliCommand, type OptionValues } from './command';
import { defaultCacheDir } from './cacheDir';
import { DECODING_FLAGS, DEVICE_FLAG, decodingOverrides, deviceOption } from './decodingFlags';

/** Decoding flags eval passes through; steps, temperature and the cache are fixed or swept by eval itself. */
const EVAL_DECODING_FLAGS = Object.fromEntries(
  Object.entries(DECODING_FLAGS).filter(([flag]) => !['steps', 'temperature', 'cache', 'seed'].includes(flag)),
);

/** From dist/engine/main.js and from engine/cli/eval.ts alike, two folders up is the repository. */
const DEFAULT_FILES = path.join(__dirname, '..', '..', 'engine', 'training', 'eval', 'heldout-files.jsonl');
const DEFAULT_CASES = 40;
const DEFAULT_SEED = 1;
const DEFAULT_CACHES: CacheMode[] = ['none', 'pd', 'decode', 'greedy'];

interface CaseOutcome {
  file: string;
  line: number;
  kind: HoleKind;
  truth: string;
  fill: string;
}

interface EvalRow {
  name: string;
  cache?: CacheMode;
  oneLine: Scores;
  multiLine: Scores;
  all: Scores;
  /** Mean wall time per fill, for model rows. */
  msPerFill?: number;
  /** Denoising steps per 16 fill tokens (16 = one token per step), for model rows. */
  stepsPer16Tokens?: number;
  outcomes: CaseOutcome[];
}

export const evalCommand: CliCommand = {
  name: 'eval',
  summary: 'Score infill on held-out code: cache modes, the untrained model and baselines.',
  synopsis: '[--model builtin] [--cases <n>] [--seed <s>] [--caches none,pd,decode,greedy] [--json]',
  details: [
    'Cuts holes of 1 line and of 2-4 lines at seeded random places in held-out files, gives the model the',
    'true length in tokens, and reports exact match and character similarity (1 - normalized Levenshtein)',
    'for each cache mode, for the same architecture untrained, and for two baselines: an empty fill, and',
    "the lines above the hole repeated. Decoding uses the model's defaults (or the decoding flags given)",
    'with one token per step (under --schedule threshold, every token whose probability reaches --threshold)',
    'and temperature 0; each model row reports its denoising steps per 16 fill tokens.',
    '',
    'Example:',
    '  dlm eval --cases 40 --json',
  ].join('\n'),
  options: {
    model: { type: 'string', description: 'builtin, a model folder, a Hugging Face checkpoint folder or id.', defaultText: 'builtin' },
    files: { type: 'string', description: 'Held-out files (JSON lines with id, lang, text).', defaultText: 'engine/training/eval/heldout-files.jsonl' },
    cases: { type: 'integer', description: 'Holes to fill, half one-line and half multi-line.', defaultText: String(DEFAULT_CASES) },
    seed: { type: 'integer', description: 'Seed of where the holes are cut (and of the untrained weights).', defaultText: String(DEFAULT_SEED) },
    caches: { type: 'string', description: 'Comma-separated cache modes to score.', defaultText: DEFAULT_CACHES.join(',') },
    'skip-untrained': { type: 'boolean', description: 'Leave out the untrained-initialisation row.' },
    examples: { type: 'integer', description: 'Fills to print per row (text output).', defaultText: '0' },
    ...EVAL_DECODING_FLAGS,
    ...DEVICE_FLAG,
    json: { type: 'boolean', description: 'Print the scores and every fill as JSON.' },
    'cache-dir': { type: 'string', description: 'Where downloaded and converted models are kept.' },
  },
  run: runEval,
};

function cacheModes(options: OptionValues): CacheMode[] {
  const text = stringOption(options, 'caches');
  if (text === undefined) return DEFAULT_CACHES;
  const modes = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const mode of modes) {
    if (!(CACHE_MODES as readonly string[]).includes(mode)) {
      throw new UsageError(`--caches: unknown cache mode '${mode}' (one of ${CACHE_MODES.join(', ')}).`);
    }
  }
  if (modes.length === 0) throw new UsageError('--caches needs at least one cache mode.');
  return modes as CacheMode[];
}

function scoreRow(name: string, outcomes: CaseOutcome[], extra: Partial<EvalRow> = {}): EvalRow {
  const of = (kind?: HoleKind) => score(outcomes.filter((o) => kind === undefined || o.kind === kind));
  return { name, ...extra, oneLine: of('one-line'), multiLine: of('multi-line'), all: of(), outcomes };
}

interface PreparedCase {
  c: InfillCase;
  prefix: string;
  suffix: string;
  length: number;
}

async function fillAll(
  engine: Engine,
  modelId: string,
  cases: PreparedCase[],
  options: Partial<DecodingOptions>,
): Promise<{ outcomes: CaseOutcome[]; msPerFill: number; stepsPer16Tokens: number }> {
  const outcomes: CaseOutcome[] = [];
  const started = performance.now();
  let steps = 0;
  let tokens = 0;
  for (const p of cases) {
    const result = await engine.infill({
      modelId,
      prefix: p.prefix,
      suffix: p.suffix,
      length: p.length,
      // One token per step and argmax decoding: the comparison is of models and caches, not of sampling luck.
      options: { ...options, steps: p.length, temperature: 0 },
    }).result;
    outcomes.push({ file: p.c.file, line: p.c.line, kind: p.c.kind, truth: p.c.middle, fill: result.text });
    steps += result.stats.steps;
    tokens += p.length;
  }
  return {
    outcomes,
    msPerFill: Math.round((performance.now() - started) / Math.max(1, cases.length)),
    stepsPer16Tokens: Math.round((160 * steps) / Math.max(1, tokens)) / 10,
  };
}

/** A model folder with the loaded model's architecture, tokenizer and graph variants, at the untrained init. */
async function writeUntrainedModel(modelDir: string, seed: number): Promise<string> {
  const manifest = readManifest(modelDir);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dlm-eval-untrained-'));
  await writeModelFolder(dir, {
    name: `${manifest.name}-untrained`,
    architecture: manifest.architecture,
    tokens: manifest.tokens,
    weights: new UntrainedWeights(manifest.architecture, seed),
    variants: manifest.variants.map(({ precision, cacheDtype, attention, head, topK, devices }) => ({
      precision, cacheDtype, attention, head, topK: topK ?? 0, ...(devices ? { devices } : {}),
    })),
    tokenizerJson: readFileSync(path.join(modelDir, manifest.tokenizer), 'utf8'),
    decoding: manifest.decoding,
  });
  return dir;
}

function table(rows: EvalRow[]): string {
  const header = ['', '1-line EM', '1-line sim', 'multi EM', 'multi sim', 'all EM', 'all sim', 'ms/fill', 'steps/16 tokens'];
  const lines = rows.map((r) => [
    r.name,
    ...[r.oneLine, r.multiLine, r.all].flatMap((s) => [s.exactMatch.toFixed(1), s.similarity.toFixed(1)]),
    r.msPerFill === undefined ? '' : String(r.msPerFill),
    r.stepsPer16Tokens === undefined ? '' : r.stepsPer16Tokens.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const format = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [format(header), ...lines.map(format)].join('\n');
}

async function runEval({ options }: { options: OptionValues }): Promise<number> {
  const caches = cacheModes(options);
  const decoding = decodingOverrides(options);
  const count = numberOption(options, 'cases') ?? DEFAULT_CASES;
  if (!Number.isInteger(count) || count < 2) throw new UsageError('--cases must be a whole number >= 2.');
  const seed = numberOption(options, 'seed') ?? DEFAULT_SEED;
  const filesPath = path.resolve(stringOption(options, 'files') ?? DEFAULT_FILES);
  let files;
  try {
    files = readEvalFiles(filesPath);
  } catch (error) {
    throw new UsageError(`Cannot read --files ${filesPath}: ${(error as Error).message}`);
  }
  const modelSetting = stringOption(options, 'model') ?? 'builtin';
  const device = deviceOption(options);
  const cacheDir = stringOption(options, 'cache-dir') ?? defaultCacheDir();
  const engine = new Engine({
    cacheDir,
    log: (level, message) => {
      if (level === 'warn' || level === 'error') process.stderr.write(`[dlm ${level}] ${message}\n`);
    },
  });
  let untrainedDir: string | undefined;
  try {
    const info = await engine.loadModel({ model: modelSetting, device });
    const countTokens = (text: string) => engine.tokenize(info.modelId, text).length;
    const prepared: PreparedCase[] = [];
    for (const c of makeCases(files, count, seed)) {
      const length = Math.max(1, countTokens(c.middle));
      if (length > info.maxCanvasTokens / 2) continue;
      prepared.push({ c, length, ...fitToCanvas(c, length, info.maxCanvasTokens, countTokens) });
    }
    process.stderr.write(`${prepared.length} holes from ${files.length} held-out files; ${info.name} on ${info.device}\n`);

    const rows: EvalRow[] = [];
    for (const cache of caches) {
      const { outcomes, msPerFill, stepsPer16Tokens } = await fillAll(engine, info.modelId, prepared, { ...decoding, cache });
      rows.push(scoreRow(`${info.name} (${cache})`, outcomes, { cache, msPerFill, stepsPer16Tokens }));
      process.stderr.write(`  ${cache}: done\n`);
    }
    if (options['skip-untrained'] !== true) {
      untrainedDir = await writeUntrainedModel(await resolveModel(modelSetting, { cacheDir }), seed);
      const untrained = await engine.loadModel({ model: untrainedDir, device });
      const { outcomes, msPerFill, stepsPer16Tokens } = await fillAll(engine, untrained.modelId, prepared, { ...decoding, cache: 'none' });
      rows.push(scoreRow('untrained init (none)', outcomes, { cache: 'none', msPerFill, stepsPer16Tokens }));
    }
    const baseline = (fill: (c: InfillCase) => string): CaseOutcome[] =>
      prepared.map((p) => ({ file: p.c.file, line: p.c.line, kind: p.c.kind, truth: p.c.middle, fill: fill(p.c) }));
    rows.push(scoreRow('baseline: empty fill', baseline(() => '')));
    rows.push(scoreRow('baseline: lines above repeated', baseline(repeatLinesAbove)));

    if (options.json) {
      const report = { model: info.name, device: info.device, seed, files: filesPath, cases: prepared.length, rows };
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      process.stdout.write(`${table(rows)}\n`);
      const examples = numberOption(options, 'examples') ?? 0;
      for (const row of rows) {
        for (const o of row.outcomes.slice(0, examples)) {
          process.stdout.write(`\n[${row.name}] ${o.file}:${o.line} (${o.kind})\n  truth: ${JSON.stringify(o.truth)}\n  fill:  ${JSON.stringify(o.fill)}\n`);
        }
      }
    }
    return EXIT_OK;
  } finally {
    await engine.shutdown();
    if (untrainedDir) rmSync(untrainedDir, { recursive: true, force: true });
  }
}

/**
 * `dlm bench --step-cost`: what one denoising step costs at real scale, and what each way of cutting it buys,
 * side by side in one run. A real geometry with random weights (randomCheckpoint.ts) is converted into graph
 * variants that differ in one thing each, starting from the reference, fp32 weights with full logits and
 * GroupQueryAttention (the CPU's graph for models under 2B parameters until the stats head became the default):
 *
 * - `int4`: int4 weights (MatMulNBits, float32 activations), the CPU's graph for larger models;
 * - `int4+stats`: the stats head (top-k and entropy in the graph) instead of full-vocabulary logits, which the host
 *   would copy out and scan (confidence.ts) for every masked row;
 * - `int4+stats+acc4`: MatMulNBits with `accuracy_level` 4 (int8 activations on the CPU's integer kernels);
 * - `...+threads`: the CPU provider's intra-op threads set to the cores the OS reports, instead of its default
 *   (onnxruntime's default is the number of physical cores); measured on the graph alone;
 * - `int8+stats`: int8 weights (DynamicQuantizeMatMul, int8.ts) with the stats head;
 * - `int8+stats+hybrid`: attention lowered as `hybrid` (attention.ts) instead of GroupQueryAttention throughout.
 *
 * Per variant: the graph alone (a full pass over the canvas, as the first step of a prefill fill computes it,
 * and a cached step of the fill's rows over the prompt's K/V) and, for the graph variants, whole fills through
 * the engine (graph time and the host's time around it), interleaved round by round. Each is checked against the
 * reference on the same canvas: the share of rows whose top-1 token agrees and the mean difference of the top-1 probability
 * (the confidence score), over the fill's predictor rows and a sample of the prompt's rows. On random weights
 * these measure arithmetic, not quality: `dlm eval` on the trained built-in model does that.
 */
import os from 'node:os';
import type { InferenceSession } from 'onnxruntime-node';
import { DEFAULT_TOP_K } from '../convert/convert';
import type { StepGraphOptions } from '../graph/stepGraphBuilder';
import type { RowPredictions, StepFeeds } from '../graph/stepContract';
import { readManifest } from '../model/manifest';
import { leadingRows } from '../reuse/kvRows';
import { loadStepModel, type OnnxStepModel } from '../runtime/onnxStepModel';
import { agreement } from '../denoiser/compare';
import { Engine } from '../service/engine';
import type { DecodingOptions } from '../../common/decodingOptions';
import { ensureGeometryModel, GEOMETRY_GRAPH } from './benchModels';
import { benchPrompt, INLINE_CANVAS } from './benchCanvases';
import type { CheckpointGeometryName } from './randomCheckpoint';
import { mean, median, round } from './statistics';

export interface StepCostVariant {
  name: string;
  graph: Partial<StepGraphOptions>;
  session?: InferenceSession.SessionOptions;
}

/** Cached steps timed per round and variant (a fill has 15 of them to one full pass). */
const CACHED_STEPS_PER_ROUND = 4;

const FP32: Partial<StepGraphOptions> = { precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits' };
const INT4: Partial<StepGraphOptions> = { ...GEOMETRY_GRAPH, attention: 'gqa', head: 'logits', int4AccuracyLevel: 0 };
const INT8_STATS: Partial<StepGraphOptions> = { precision: 'int8', cacheDtype: 'float32', attention: 'gqa', head: 'stats', topK: DEFAULT_TOP_K };
const INT4_STATS: Partial<StepGraphOptions> = { ...INT4, head: 'stats', topK: DEFAULT_TOP_K };

/** The variants, each one change on the one before (int8+stats: on int4+stats); the first is the reference. */
export function stepCostVariants(): StepCostVariant[] {
  const cores = os.availableParallelism();
  return [
    { name: 'fp32', graph: FP32 },
    { name: 'int4', graph: INT4 },
    { name: 'int4+stats', graph: INT4_STATS },
    { name: 'int4+stats+acc4', graph: { ...INT4_STATS, int4AccuracyLevel: 4 } },
    { name: `int4+stats+acc4+threads${cores}`, graph: { ...INT4_STATS, int4AccuracyLevel: 4 }, session: { intraOpNumThreads: cores } },
    { name: 'int8+stats', graph: INT8_STATS },
    { name: 'int8+stats+hybrid', graph: { ...INT8_STATS, attention: 'hybrid' } },
  ];
}

export interface StepCostOptions {
  geometry: CheckpointGeometryName;
  modelsDir: string;
  rounds: number;
  /** Decoding options of the fills (the model's own defaults otherwise), with prefill cache. */
  overrides: Partial<DecodingOptions>;
  log(message: string): void;
}

export interface StepCostRow {
  variant: string;
  /** Graph alone: the first step's full pass (prompt + fill rows), and one cached step of the fill's rows. */
  fullPassMs: number;
  cachedStepMs: number;
  /** Whole fills through the engine: total, in graph calls, and the host's share per step (null: not run). */
  fillMs: number | null;
  fillGraphMs: number | null;
  hostMsPerStep: number | null;
  steps: number | null;
  speedupVsReference: number | null;
  /** Against the reference variant on the same canvas. */
  top1Agreement: number;
  meanTop1ProbabilityDifference: number;
  fillAgreement: number | null;
}

export interface StepCostReport {
  model: string;
  device: string;
  promptTokens: number;
  genTokens: number;
  checkedRows: number;
  rows: StepCostRow[];
}

interface Top1 {
  ids: Int32Array;
  probabilities: Float32Array;
}

function top1Of(p: RowPredictions): Top1 {
  const ids = new Int32Array(p.rows);
  const probabilities = new Float32Array(p.rows);
  for (let r = 0; r < p.rows; r++) {
    if (p.kind === 'stats') {
      ids[r] = p.topIds[r * p.k];
      probabilities[r] = p.topProbs[r * p.k];
      continue;
    }
    const row = p.logits.subarray(r * p.vocabSize, (r + 1) * p.vocabSize);
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
    let sum = 0;
    for (let v = 0; v < row.length; v++) sum += Math.exp(row[v] - row[best]);
    ids[r] = best;
    probabilities[r] = 1 / sum;
  }
  return { ids, probabilities };
}

function zeros(n: number): Float32Array {
  return new Float32Array(n);
}

/** A full pass over `ids` (no context), reading the rows `read`. */
function canvasFeeds(model: OnnxStepModel, ids: number[], read: number[]): StepFeeds {
  const n = ids.length;
  const noPast = Array.from({ length: model.numLayers }, () => zeros(0));
  return {
    inputIds: BigInt64Array.from(ids, BigInt),
    positionIds: BigInt64Array.from(ids, (_, i) => BigInt(i)),
    attentionBias: zeros(n * n),
    logitsIndex: BigInt64Array.from(read, BigInt),
    pastKeys: noPast,
    pastValues: noPast,
    contextLength: 0,
  };
}

/**
 * A cached step: the last `q` rows of the full pass `full` over the K/V the pass computed for the others, reading
 * `reads` rows. Which rows are cached does not change the cost, only how many.
 */
function cachedFeeds(full: StepFeeds, keys: Float32Array[], values: Float32Array[], model: OnnxStepModel, q: number, reads: number): StepFeeds {
  const n = full.inputIds.length;
  const c = n - q;
  return {
    inputIds: full.inputIds.subarray(c),
    positionIds: full.positionIds.subarray(c),
    attentionBias: zeros(q * n),
    logitsIndex: BigInt64Array.from({ length: reads }, (_, i) => BigInt(i)),
    pastKeys: keys.map((k) => leadingRows(k, n, c, model.numKvHeads, model.headDim) as Float32Array),
    pastValues: values.map((v) => leadingRows(v, n, c, model.numKvHeads, model.headDim) as Float32Array),
    contextLength: c,
  };
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

export async function runStepCostBench(options: StepCostOptions): Promise<StepCostReport> {
  const variants = stepCostVariants();
  const canvas = INLINE_CANVAS;
  const dirs: string[] = [];
  for (const v of variants) dirs.push(await ensureGeometryModel(options.geometry, options.modelsDir, options.log, v.graph));
  const manifest = readManifest(dirs[0]);
  const arch = manifest.architecture;
  const prompt = benchPrompt(canvas, arch.vocabSize, manifest.tokens);
  const prefix = prompt.prefixIds.length;
  const ids = [...prompt.prefixIds, ...new Array<number>(canvas.genTokens).fill(manifest.tokens.mask), ...prompt.suffixIds];
  // The fill's predictor rows (a shifted model reads row p-1 for position p), then every 8th prompt row.
  const fillRows = Array.from({ length: canvas.genTokens }, (_, i) => prefix + i - (arch.logitShift ? 1 : 0));
  const sampled = ids.map((_, i) => i).filter((i) => i % 8 === 0 && !fillRows.includes(i));
  const checked = [...fillRows, ...sampled];

  // The graph alone: every variant loaded at once (int4 sessions of a 0.5B model take well under 1 GB each), and
  // timed in turn, round after round, so drift in the machine's load hits them alike.
  const models: OnnxStepModel[] = [];
  const graphRows: { fullMs: number[]; cachedMs: number[]; top1: Top1 }[] = [];
  try {
    const cached: StepFeeds[] = [];
    const full: StepFeeds[] = [];
    for (let i = 0; i < variants.length; i++) {
      const { model } = await loadStepModel(dirs[i], readManifest(dirs[i]), { device: 'cpu', ...(variants[i].session ? { sessionOptions: variants[i].session } : {}) });
      models.push(model);
      const check = await model.run(canvasFeeds(model, ids, checked), { newKv: 'none' });
      full.push(canvasFeeds(model, ids, fillRows));
      const first = await model.run(full[i]);
      cached.push(cachedFeeds(full[i], first.newKeys as Float32Array[], first.newValues as Float32Array[], model, canvas.genTokens + 1, canvas.genTokens));
      graphRows.push({ fullMs: [], cachedMs: [], top1: top1Of(check.predictions) });
    }
    for (let r = 0; r < options.rounds; r++) {
      for (let i = 0; i < variants.length; i++) graphRows[i].fullMs.push((await timed(() => models[i].run(full[i], { newKv: 'none' }))).ms);
      for (let s = 0; s < CACHED_STEPS_PER_ROUND; s++) {
        for (let i = 0; i < variants.length; i++) graphRows[i].cachedMs.push((await timed(() => models[i].run(cached[i], { newKv: 'none' }))).ms);
      }
      options.log(`graph round ${r + 1}/${options.rounds}: ` + variants.map((v, i) => `${v.name} ${round(graphRows[i].fullMs[r], 0)} ms`).join(', '));
    }
  } finally {
    await Promise.all(models.map((m) => m.release()));
  }

  // Whole fills through the engine, each graph variant loaded in an engine of its own, interleaved round by round.
  const fills = variants.map(() => [] as { ms: number; graphMs: number; steps: number; fillIds: number[] }[]);
  const engines = variants.map((v) => (v.session ? null : new Engine({ cacheDir: options.modelsDir, log: () => {} })));
  let device = 'cpu';
  try {
    const modelIds: string[] = [];
    for (let i = 0; i < variants.length; i++) {
      const info = await engines[i]?.loadModel({ model: dirs[i], device: 'cpu' });
      modelIds.push(info?.modelId ?? '');
      if (info) device = info.device;
    }
    for (let r = 0; r < options.rounds; r++) {
      for (let i = 0; i < variants.length; i++) {
        const engine = engines[i];
        if (!engine) continue;
        const result = await engine.infillTokens({
          modelId: modelIds[i],
          ...prompt,
          length: canvas.genTokens,
          runToCompletion: true,
          options: { blockLength: canvas.genTokens, steps: canvas.steps, ...options.overrides, cache: 'prefill' },
        }).result;
        const s = result.stats;
        fills[i].push({ ms: s.ms, graphMs: s.graphMs ?? 0, steps: s.steps, fillIds: result.fillIds });
        options.log(`fill round ${r + 1}/${options.rounds} ${variants[i].name}: ${round(s.ms, 0)} ms (graph ${round(s.graphMs ?? 0, 0)} ms, ${s.steps} steps)`);
      }
    }
  } finally {
    await Promise.all(engines.map((e) => e?.shutdown()));
  }

  const reference = graphRows[0].top1;
  const referenceMs = median(fills[0].map((f) => f.ms));
  const rows = variants.map((v, i): StepCostRow => {
    const { top1, fullMs, cachedMs } = graphRows[i];
    let same = 0;
    const differences: number[] = [];
    for (let r = 0; r < checked.length; r++) {
      if (top1.ids[r] === reference.ids[r]) same++;
      differences.push(Math.abs(top1.probabilities[r] - reference.probabilities[r]));
    }
    const graph = {
      variant: v.name,
      fullPassMs: round(median(fullMs), 1),
      cachedStepMs: round(median(cachedMs), 1),
      top1Agreement: round(same / checked.length, 4),
      meanTop1ProbabilityDifference: Number(mean(differences).toPrecision(3)),
    };
    if (fills[i].length === 0) {
      return { ...graph, fillMs: null, fillGraphMs: null, hostMsPerStep: null, steps: null, speedupVsReference: null, fillAgreement: null };
    }
    const fillMs = median(fills[i].map((f) => f.ms));
    const fillGraphMs = median(fills[i].map((f) => f.graphMs));
    const last = fills[i][fills[i].length - 1];
    return {
      ...graph,
      fillMs: round(fillMs, 1),
      fillGraphMs: round(fillGraphMs, 1),
      hostMsPerStep: round((fillMs - fillGraphMs) / last.steps, 2),
      steps: last.steps,
      speedupVsReference: round(referenceMs / fillMs, 2),
      fillAgreement: round(agreement(last.fillIds, fills[0][fills[0].length - 1].fillIds, canvas.genTokens), 4),
    };
  });
  return { model: options.geometry, device, promptTokens: canvas.promptTokens, genTokens: canvas.genTokens, checkedRows: checked.length, rows };
}

export function formatStepCostTable(report: StepCostReport): string {
  const header = ['variant', 'full pass ms', 'cached step ms', 'fill ms', 'fill graph ms', 'host ms/step', 'speedup', 'top-1 agree', 'Δ top-1 p', 'fill agree'];
  const or = (value: number | null, text: (v: number) => string) => (value === null ? '-' : text(value));
  const rows = report.rows.map((r) => [
    r.variant,
    r.fullPassMs.toFixed(0),
    r.cachedStepMs.toFixed(1),
    or(r.fillMs, (v) => v.toFixed(0)),
    or(r.fillGraphMs, (v) => v.toFixed(0)),
    or(r.hostMsPerStep, (v) => v.toFixed(1)),
    or(r.speedupVsReference, (v) => `${v.toFixed(2)}x`),
    `${(r.top1Agreement * 100).toFixed(1)}%`,
    r.meanTop1ProbabilityDifference.toExponential(1),
    or(r.fillAgreement, (v) => `${(v * 100).toFixed(1)}%`),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [
    `${report.model} (${report.device}), ${report.promptTokens} prompt + ${report.genTokens} fill tokens, prefill cache; checks over ${report.checkedRows} rows`,
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
  ].join('\n') + '\n';
}

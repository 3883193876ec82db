/**
 * `dlm bench --typing`: prompt reuse across keystrokes against none, on what an editor sends while someone
 * types. Regions of real source files are typed out again (typingSessions.ts); every debounced keystroke makes
 * one inline completion request, its canvas cut around the cursor exactly as the extension cuts it
 * (extension/canvas.ts). Each request runs through the engine once per side, in rotating order, each side on
 * its own document: full-depth reuse, BiCache's depth-wise reuse, and no reuse (a cold request, by default
 * with the prefill cache, the fastest mode without cross-request reuse). A request is measured from submission:
 * the first partial result (the first progress notification) and the final result. Throughput is requests per
 * second of back-to-back processing; agreement is the share of fill positions where a side's final fill and
 * the one without reuse hold the same token (an ended fill reads as ended), averaged over requests. Figures are
 * medians. Besides: `coldMs`, a session's first request with nothing stored (its document just opened), and
 * `warmUp`, a session's first request after the editor's warm-up of the opened document had finished.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { buildTextCanvas } from '../../common/textCanvas';
import { MANIFEST_FILE, readManifest } from '../model/manifest';
import { builtinModelDir, resolveModel } from '../store/modelManager';
import { writeSyntheticModel } from '../model/synthetic';
import type { DeviceOption, PromptReuseMode } from '../../common/protocol';
import type { DecodingOptions } from '../../common/decodingOptions';
import { prepareModelForReuse } from '../prepare/prepareModel';
import { reuseUnavailableReason } from '../reuse/prefixReuse';
import { loadSourceTexts } from '../prepare/sourceTexts';
import { Engine } from '../service/engine';
import { agreement } from '../denoiser/compare';
import { typingSessions } from './typingSessions';
import { mean, median, round } from './statistics';

/** The extension's defaults for inline completion (package.json `dlm.contextBytes`, `dlm.fillLength`, ...). */
export const EDITOR_CANVAS = { contextBytes: 4096, fillLength: 32, lineFillLength: 16, debounceMs: 200 } as const;

/** The built-in model's geometry (engine/training/train.py `builtin`) with random weights and room for an editor's canvas. */
export const TYPING_SYNTHETIC_MODEL = 'synthetic';
const SYNTHETIC_ARCHITECTURE = {
  hiddenSize: 256, numLayers: 6, numHeads: 8, numKvHeads: 2, headDim: 32, intermediateSize: 640, vocabSize: 4096, maxPositions: 1024,
};
const SYNTHETIC_SEED = 7;

export interface TypingBenchOptions {
  /** `synthetic`, `builtin`, or a model folder. */
  model: string;
  device: DeviceOption;
  /** Source texts to type from (prepare/sourceTexts.ts). */
  source: string;
  sessions: number;
  charsPerSession: number;
  debounceMs: number;
  seed: number;
  /** Decoding options of every side (default cache: pd). */
  overrides: Partial<DecodingOptions>;
  /** Cut every canvas to this cold-request budget, as `dlm.coldRequestBudgetMs` does in the editor (off: 0 or absent). */
  coldBudgetMs?: number;
  /** Reuse modes compared with no reuse; the first is the report's `reuse`. */
  reuseModes: PromptReuseMode[];
  modelsDir: string;
  log(message: string): void;
}

export interface TypingSide {
  firstPartialMs: number;
  finalMs: number;
  requestsPerSecond: number;
}

export interface ComparedSide extends TypingSide {
  /** Agreement with no reuse, as the report's. */
  agreement: number;
  exactMatch: number;
}

export interface TypingReport {
  requests: number;
  /** Of `reuse` with no reuse: the share of fill tokens that agree, and of requests whose final texts are identical. */
  agreement: number;
  exactMatch: number;
  reuseMode: PromptReuseMode;
  reuse: TypingSide;
  noReuse: TypingSide;
  /** Final ms of a session's first request with nothing stored (median over sessions). */
  coldMs: number;
  /** A session's first request after its opened document was warmed up (medians over sessions). */
  warmUp: { firstPartialMs: number; finalMs: number };
  /** The depth-wise side, when both modes ran. */
  depthwise?: ComparedSide;
  model: string;
  /** `trained` (the built-in model), `random` (synthetic), or `unknown` (a folder the bench cannot tell). */
  weights: 'trained' | 'random' | 'unknown';
  device: string;
  cache: string;
  /** The cold-request budget every canvas was cut to, when one was given. */
  coldBudgetMs?: number;
  sessions: number;
  keystrokes: number;
  /** Means over the `reuse` side's requests: canvas tokens (masks included), and prompt tokens reused before and after the fill. */
  canvasTokens: number;
  reusedPrefixTokens: number;
  reusedSuffixTokens: number;
}

interface Sample {
  firstPartialMs: number;
  finalMs: number;
  fillIds: number[];
  text: string;
  canvasTokens: number;
  reusedPrefixTokens: number;
  reusedSuffixTokens: number;
}

/** A side of the comparison: a reuse mode, or none. */
type Side = PromptReuseMode | 'none';

/** The model folder to type with, readied for depth-wise reuse (segments and depth profile) when that side runs. */
async function typingModel(options: TypingBenchOptions): Promise<string> {
  let dir: string;
  if (options.model === TYPING_SYNTHETIC_MODEL) {
    dir = path.join(options.modelsDir, `typing-synthetic-6x256-seed${SYNTHETIC_SEED}`);
    if (!existsSync(path.join(dir, MANIFEST_FILE))) {
      options.log(`building the synthetic typing model (the built-in geometry, random weights) in ${dir} ...`);
      await writeSyntheticModel(dir, { preset: 'medium-dream', seed: SYNTHETIC_SEED, name: 'typing-synthetic', architecture: SYNTHETIC_ARCHITECTURE });
    }
  } else {
    dir = await resolveModel(options.model, { cacheDir: options.modelsDir });
  }
  const manifest = readManifest(dir);
  const unready = manifest.variants.some((v) => reuseUnavailableReason(dir, manifest.architecture, v) !== null);
  if (options.reuseModes.includes('depthwise') && unready) {
    options.log(`readying ${dir} for depth-wise reuse (dlm profile-depth) ...`);
    const profile = await prepareModelForReuse(dir, { device: options.device, source: options.source });
    options.log(`safe depths by prefix ratio: ${profile.ratios.map((r) => `${r.ratio}:${r.safeDepth}`).join(' ')}`);
  }
  return dir;
}

export async function runTypingBench(options: TypingBenchOptions): Promise<TypingReport> {
  if (options.reuseModes.length === 0) throw new Error('the typing benchmark needs a reuse mode to compare');
  const dir = await typingModel(options);
  const texts = loadSourceTexts(options.source);
  const sessions = typingSessions(texts, {
    sessions: options.sessions,
    charsPerSession: options.charsPerSession,
    debounceMs: options.debounceMs,
    seed: options.seed,
  });
  const decoding: Partial<DecodingOptions> = { cache: 'pd', ...options.overrides };
  const engine = new Engine({
    cacheDir: options.modelsDir,
    log: (level, message) => {
      if (level !== 'debug') options.log(message);
    },
  });
  try {
    const info = await engine.loadModel({ model: dir, device: options.device });
    const manifest = engine.manifestOf(info.modelId);
    const coldBudgetMs = options.coldBudgetMs || undefined;
    const canvasOf = (before: string, after: string) => buildTextCanvas(before, after, EDITOR_CANVAS);
    /** As the extension asks: its canvas, fitted to the model (and to the cold budget) by the engine. */
    const idsOf = (before: string, after: string) => {
      const canvas = canvasOf(before, after);
      return { length: canvas.length, ...engine.canvasIds({ modelId: info.modelId, ...canvas, fitToModel: true, coldBudgetMs, options: decoding }) };
    };
    type Ids = ReturnType<typeof idsOf>;
    const infill = async (document: string, { prefixIds, suffixIds, length }: Ids, side: Side): Promise<Sample> => {
      const started = performance.now();
      let firstPartialMs = NaN;
      const job = engine.infillTokens(
        {
          modelId: info.modelId,
          documentId: document,
          prefixIds,
          suffixIds,
          length,
          options: decoding,
          reusePrefix: side !== 'none',
          ...(side === 'none' ? {} : { reuseMode: side }),
        },
        { onProgress: () => (firstPartialMs = Number.isNaN(firstPartialMs) ? performance.now() - started : firstPartialMs) },
      );
      const result = await job.result;
      return {
        firstPartialMs,
        finalMs: performance.now() - started,
        fillIds: result.fillIds,
        text: result.text,
        canvasTokens: prefixIds.length + length + suffixIds.length,
        reusedPrefixTokens: result.stats.reusedPrefixTokens ?? 0,
        reusedSuffixTokens: result.stats.reusedSuffixTokens ?? 0,
      };
    };

    const sides: Side[] = [...options.reuseModes, 'none'];
    const primary = options.reuseModes[0];
    // Priming: sessions (and the depth-wise segments, loaded at their first use) are not part of any request.
    const prime = sessions[0].requests[0];
    for (const side of sides) for (let i = 0; i < 2; i++) await infill('priming', idsOf(prime.before, prime.after), side);

    const samples = new Map<Side, Sample[]>(sides.map((side) => [side, []]));
    const cold: number[] = [];
    const warmed: Sample[] = [];
    let index = 0;
    for (const [s, session] of sessions.entries()) {
      // The document as opened, warmed up as the extension does, then its first request.
      const first = session.requests[0];
      const warmDocument = `typing-${s}-warmed`;
      await engine.warmPrompt({ modelId: info.modelId, documentId: warmDocument, ...canvasOf(session.openedBefore, first.after), options: decoding, fitToModel: true, coldBudgetMs, reuseMode: primary }).result;
      warmed.push(await infill(warmDocument, idsOf(first.before, first.after), primary));

      for (const [r, request] of session.requests.entries()) {
        // Rotate which side runs first, so none gets the warmer machine.
        const order = sides.map((_, i) => sides[(i + index) % sides.length]);
        index++;
        // One canvas for every side: a cold request rescales the budget's cost, which would cut the next side's otherwise.
        const ids = idsOf(request.before, request.after);
        for (const side of order) {
          const sample = await infill(`typing-${s}-${side}`, ids, side);
          samples.get(side)!.push(sample);
          if (r === 0 && side === primary) cold.push(sample.finalMs);
        }
      }
      const last = (side: Side) => samples.get(side)!.slice(-session.requests.length);
      const summary = (side: Side) =>
        `${side} first partial ${round(median(last(side).map((x) => x.firstPartialMs)), 1)} ms, final ${round(median(last(side).map((x) => x.finalMs)), 1)} ms`;
      options.log(`session ${s + 1}/${sessions.length} (${session.source}): ${session.requests.length} requests for ${session.keystrokes} keystrokes; ${sides.map(summary).join('; ')}`);
    }

    const side = (list: Sample[]): TypingSide => ({
      firstPartialMs: round(median(list.map((x) => x.firstPartialMs)), 2),
      finalMs: round(median(list.map((x) => x.finalMs)), 2),
      requestsPerSecond: round(list.length / (list.reduce((n, x) => n + x.finalMs, 0) / 1000), 3),
    });
    const without = samples.get('none')!;
    const compared = (list: Sample[]) => {
      const fillLength = (i: number) => Math.max(list[i].fillIds.length, without[i].fillIds.length, 1);
      return {
        agreement: round(mean(list.map((x, i) => agreement(x.fillIds, without[i].fillIds, fillLength(i)))), 4),
        exactMatch: round(mean(list.map((x, i) => (x.text === without[i].text ? 1 : 0))), 4),
      };
    };
    const reused = samples.get(primary)!;
    const depthwise = primary !== 'depthwise' && samples.has('depthwise') ? samples.get('depthwise')! : null;
    return {
      requests: reused.length,
      ...compared(reused),
      reuseMode: primary,
      reuse: side(reused),
      noReuse: side(without),
      coldMs: round(median(cold), 2),
      warmUp: { firstPartialMs: round(median(warmed.map((x) => x.firstPartialMs)), 2), finalMs: round(median(warmed.map((x) => x.finalMs)), 2) },
      ...(depthwise ? { depthwise: { ...side(depthwise), ...compared(depthwise) } } : {}),
      model: manifest.name,
      weights: weightsOf(options.model, dir, manifest.source?.kind),
      device: info.device,
      cache: decoding.cache!,
      ...(coldBudgetMs ? { coldBudgetMs } : {}),
      sessions: sessions.length,
      keystrokes: sessions.reduce((n, s) => n + s.keystrokes, 0),
      canvasTokens: round(mean(reused.map((x) => x.canvasTokens)), 1),
      reusedPrefixTokens: round(mean(reused.map((x) => x.reusedPrefixTokens)), 1),
      reusedSuffixTokens: round(mean(reused.map((x) => x.reusedSuffixTokens)), 1),
    };
  } finally {
    await engine.shutdown();
  }
}

/**
 * What the agreement can mean: only the built-in model is known to be trained; synthetic folders have random
 * weights; of a converted checkpoint the folder does not say (a random checkpoint in a real layout converts like
 * a trained one).
 */
export function weightsOf(model: string, dir: string, source: string | undefined): TypingReport['weights'] {
  if (source === 'synthetic') return 'random';
  if (model === 'builtin' || path.resolve(dir) === path.resolve(builtinModelDir())) return 'trained';
  return 'unknown';
}

const WEIGHTS_NOTE: Record<TypingReport['weights'], string> = {
  trained: 'trained weights',
  random: 'random weights: agreement means nothing',
  unknown: 'weights of unknown training: agreement means something only for trained weights',
};

export function formatTypingReport(r: TypingReport): string {
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  const d = r.depthwise;
  const row = (label: string, pick: (x: TypingSide) => number, gain: (reuse: number, none: number) => string) =>
    `| ${label} | ${pick(r.reuse)} | ${d ? `${pick(d)} | ` : ''}${pick(r.noReuse)} | ${gain(pick(r.reuse), pick(r.noReuse))} |`;
  const sooner = (a: number, b: number) => ratio(b, a);
  return [
    `${r.requests} requests from ${r.keystrokes} keystrokes in ${r.sessions} sessions; model ${r.model} (${WEIGHTS_NOTE[r.weights]}) on ${r.device}, cache ${r.cache}`,
    `canvas ${r.canvasTokens} tokens on average${r.coldBudgetMs ? ` (cut to a ${r.coldBudgetMs} ms cold budget)` : ''}; ${r.reuseMode} reuse took ${r.reusedPrefixTokens} prefix + ${r.reusedSuffixTokens} suffix tokens per request`,
    '',
    `| | ${r.reuseMode} | ${d ? 'depthwise | ' : ''}no reuse | gain |`,
    `|---|---:|${d ? '---:|' : ''}---:|---:|`,
    row('first partial ms', (x) => x.firstPartialMs, sooner),
    row('final ms', (x) => x.finalMs, sooner),
    row('requests/s', (x) => x.requestsPerSecond, ratio),
    '',
    `cold request (nothing stored): ${r.coldMs} ms to the final text, ${ratio(r.coldMs, r.reuse.finalMs)} the ${r.reuseMode} median`,
    `first request after a warm-up of the opened document: first partial ${r.warmUp.firstPartialMs} ms, final ${r.warmUp.finalMs} ms`,
    `agreement with no reuse: ${r.reuseMode} ${(r.agreement * 100).toFixed(1)}% of tokens (${(r.exactMatch * 100).toFixed(1)}% of texts identical)` +
      (d ? `, depthwise ${(d.agreement * 100).toFixed(1)}% (${(d.exactMatch * 100).toFixed(1)}%)` : ''),
    '',
  ].join('\n');
}

/**
 * `dlm bench --typing`: prefix reuse against no reuse on what an editor sends while someone types. Regions of
 * real source files are typed out again (typingSessions.ts); every debounced keystroke makes one inline
 * completion request, its canvas cut around the cursor exactly as the extension cuts it
 * (extension/canvas.ts). Each request runs twice through the engine, with and without reuse, in alternating
 * order, and is measured from submission: the first partial result (the first progress notification) and the
 * final result. Throughput is requests per second of back-to-back processing; agreement is the share of fill
 * positions where the two final fills hold the same token (an ended fill reads as ended), averaged over
 * requests. Figures are medians.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { buildTextCanvas } from '../../common/textCanvas';
import { MANIFEST_FILE, readManifest } from '../model/manifest';
import { resolveModel } from '../store/modelManager';
import { writeSyntheticModel } from '../model/synthetic';
import type { DeviceOption } from '../../common/protocol';
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
  overrides: Partial<DecodingOptions>;
  modelsDir: string;
  log(message: string): void;
}

export interface TypingSide {
  firstPartialMs: number;
  finalMs: number;
  requestsPerSecond: number;
}

export interface TypingReport {
  requests: number;
  agreement: number;
  /** Share of requests whose final texts are identical. */
  exactMatch: number;
  reuse: TypingSide;
  noReuse: TypingSide;
  model: string;
  /** `trained` for a trained model; random weights otherwise (speed and exactness only mean something). */
  weights: string;
  device: string;
  sessions: number;
  keystrokes: number;
  /** Means over requests: canvas tokens (masks included) and prefix tokens reused. */
  canvasTokens: number;
  reusedPrefixTokens: number;
}

interface Sample {
  firstPartialMs: number;
  finalMs: number;
  fillIds: number[];
  text: string;
  reusedPrefixTokens: number;
}

/** The model folder to type with, readied for prefix reuse (segments and depth profile). */
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
  if (manifest.variants.some((v) => reuseUnavailableReason(dir, manifest.architecture, v) !== null)) {
    options.log(`readying ${dir} for prefix reuse (dlm profile-depth) ...`);
    const profile = await prepareModelForReuse(dir, { device: options.device, source: options.source });
    options.log(`safe depths by prefix ratio: ${profile.ratios.map((r) => `${r.ratio}:${r.safeDepth}`).join(' ')}`);
  }
  return dir;
}

export async function runTypingBench(options: TypingBenchOptions): Promise<TypingReport> {
  const dir = await typingModel(options);
  const texts = loadSourceTexts(options.source);
  const sessions = typingSessions(texts, {
    sessions: options.sessions,
    charsPerSession: options.charsPerSession,
    debounceMs: options.debounceMs,
    seed: options.seed,
  });
  const engine = new Engine({
    cacheDir: options.modelsDir,
    log: (level, message) => {
      if (level !== 'debug') options.log(message);
    },
  });
  try {
    const info = await engine.loadModel({ model: dir, device: options.device });
    const manifest = engine.manifestOf(info.modelId);
    const infill = async (document: string, before: string, after: string, reuse: boolean): Promise<Sample & { canvasTokens: number }> => {
      const canvas = buildTextCanvas(before, after, EDITOR_CANVAS);
      // As the extension asks: its canvas, fitted to the model by the engine.
      const { prefixIds, suffixIds } = engine.canvasIds({ modelId: info.modelId, ...canvas, fitToModel: true });
      const started = performance.now();
      let firstPartialMs = NaN;
      const job = engine.infillTokens(
        { modelId: info.modelId, documentId: reuse ? document : `${document}#no-reuse`, prefixIds, suffixIds, length: canvas.length, options: options.overrides, reusePrefix: reuse },
        { onProgress: () => (firstPartialMs = Number.isNaN(firstPartialMs) ? performance.now() - started : firstPartialMs) },
      );
      const result = await job.result;
      const finalMs = performance.now() - started;
      return {
        firstPartialMs,
        finalMs,
        fillIds: result.fillIds,
        text: result.text,
        reusedPrefixTokens: result.stats.reusedPrefixTokens ?? 0,
        canvasTokens: prefixIds.length + canvas.length + suffixIds.length,
      };
    };

    // Warm-up: sessions (and the reuse segments, loaded at the first reuse) are not part of any request.
    const warm = sessions[0].requests[0];
    for (const reuse of [true, false]) for (let i = 0; i < 2; i++) await infill('warm-up', warm.before, warm.after, reuse);

    const withReuse: Sample[] = [];
    const without: Sample[] = [];
    const canvasTokens: number[] = [];
    let index = 0;
    for (const [s, session] of sessions.entries()) {
      const document = `typing-${s}`;
      for (const request of session.requests) {
        // Alternate which runs first, so neither gets the warmer machine.
        const order = index++ % 2 === 0 ? [true, false] : [false, true];
        for (const reuse of order) {
          const sample = await infill(document, request.before, request.after, reuse);
          (reuse ? withReuse : without).push(sample);
          if (reuse) canvasTokens.push(sample.canvasTokens);
        }
      }
      const last = withReuse.length - session.requests.length;
      options.log(
        `session ${s + 1}/${sessions.length} (${session.source}): ${session.requests.length} requests for ${session.keystrokes} keystrokes; ` +
          `first partial ${round(median(withReuse.slice(last).map((x) => x.firstPartialMs)), 1)} vs ` +
          `${round(median(without.slice(last).map((x) => x.firstPartialMs)), 1)} ms, final ${round(median(withReuse.slice(last).map((x) => x.finalMs)), 1)} vs ` +
          `${round(median(without.slice(last).map((x) => x.finalMs)), 1)} ms`,
      );
    }
    const side = (samples: Sample[]): TypingSide => ({
      firstPartialMs: round(median(samples.map((x) => x.firstPartialMs)), 2),
      finalMs: round(median(samples.map((x) => x.finalMs)), 2),
      requestsPerSecond: round(samples.length / (samples.reduce((n, x) => n + x.finalMs, 0) / 1000), 3),
    });
    const fillLength = (i: number) => Math.max(withReuse[i].fillIds.length, without[i].fillIds.length, 1);
    return {
      requests: withReuse.length,
      agreement: round(mean(withReuse.map((x, i) => agreement(x.fillIds, without[i].fillIds, fillLength(i)))), 4),
      exactMatch: round(mean(withReuse.map((x, i) => (x.text === without[i].text ? 1 : 0))), 4),
      reuse: side(withReuse),
      noReuse: side(without),
      model: manifest.name,
      // Only synthetic folders have random weights; converted checkpoints (the built-in one too) are trained.
      weights: manifest.source?.kind === 'synthetic' ? 'random' : 'trained',
      device: info.device,
      sessions: sessions.length,
      keystrokes: sessions.reduce((n, s) => n + s.keystrokes, 0),
      canvasTokens: round(mean(canvasTokens), 1),
      reusedPrefixTokens: round(mean(withReuse.map((x) => x.reusedPrefixTokens)), 1),
    };
  } finally {
    await engine.shutdown();
  }
}

export function formatTypingReport(r: TypingReport): string {
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  return [
    `${r.requests} requests from ${r.keystrokes} keystrokes in ${r.sessions} sessions; model ${r.model} (${r.weights} weights) on ${r.device}`,
    `canvas ${r.canvasTokens} tokens on average, ${r.reusedPrefixTokens} prefix tokens reused`,
    '',
    '|                  | reuse | no reuse | gain |',
    '|------------------|-------|----------|------|',
    `| first partial ms | ${r.reuse.firstPartialMs} | ${r.noReuse.firstPartialMs} | ${ratio(r.noReuse.firstPartialMs, r.reuse.firstPartialMs)} |`,
    `| final ms         | ${r.reuse.finalMs} | ${r.noReuse.finalMs} | ${ratio(r.noReuse.finalMs, r.reuse.finalMs)} |`,
    `| requests/s       | ${r.reuse.requestsPerSecond} | ${r.noReuse.requestsPerSecond} | ${ratio(r.reuse.requestsPerSecond, r.noReuse.requestsPerSecond)} |`,
    '',
    `agreement of the final fills: ${(r.agreement * 100).toFixed(1)}% of tokens, ${(r.exactMatch * 100).toFixed(1)}% of texts identical`,
    '',
  ].join('\n');
}

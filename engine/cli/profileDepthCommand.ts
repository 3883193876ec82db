/**
 * `dlm profile-depth <model>`: readies a model folder for prefix reuse (engine/prepare/prepareModel.ts) and
 * prints the profile: per prefix ratio, the per-layer similarity of prefix K/V alone vs in context, and the
 * safe depth.
 */
import { writeFileSync } from 'node:fs';
import { resolveModel } from '../store/modelManager';
import { BICACHE_THRESHOLD } from '../prepare/depthProfiler';
import { DEPTH_PROFILE_FILE, type DepthProfile } from '../reuse/depthProfile';
import { DEFAULT_PROFILE_CANVAS, DEFAULT_PROFILE_FILL, measureCallOverhead, prepareModelForReuse } from '../prepare/prepareModel';
import { defaultSourcePath, HELD_OUT_FILES } from '../prepare/sourceTexts';
import { defaultCacheDir } from './cacheDir';
import { EXIT_OK, UsageError, numberOption, stringOption, type CliCommand } from './command';
import { DEVICE_FLAG, deviceOption } from './decodingFlags';

export function formatDepthProfile(profile: DepthProfile): string {
  const layers = profile.ratios[0]?.similarity.length ?? 0;
  const header = ['ratio', ...Array.from({ length: layers }, (_, l) => `L${l}`), 'measured', 'safe depth'];
  const rows = profile.ratios.map((r) => [
    r.ratio.toFixed(2),
    ...r.similarity.map((s) => s.toFixed(3)),
    String(r.measuredDepth),
    String(r.safeDepth),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

function ratiosOption(raw: string | undefined): number[] | undefined {
  if (raw === undefined) return undefined;
  const ratios = raw.split(',').map((s) => Number(s.trim()));
  if (ratios.some((r) => !(r > 0 && r < 1))) throw new UsageError(`--ratios takes numbers in (0, 1), comma-separated; got '${raw}'.`);
  return ratios;
}

export const profileDepthCommand: CliCommand = {
  name: 'profile-depth',
  summary: 'Profile how deep a prefix\'s K/V can be reused across requests (BiCache) and ready the model for it.',
  synopsis: '<model> [--source <path>] [--ratios 0.1,...] [--threshold 0.97] [options]',
  details: [
    'For each prefix ratio (shared prefix over the whole canvas, masks included), canvases of real source text',
    '[prefix][masks][suffix] are run twice: the prefix alone, and the whole canvas. The per-layer cosine',
    'similarity of the prefix K/V between the two gives the safe depth: the leading layers at or above the',
    'threshold, made monotone in the ratio. The profile goes to <model>/' + DEPTH_PROFILE_FILE + ', beside the',
    'depth-wise segment graphs written for every variant; the engine reuses prefixes with such a folder.',
    `Source: a .jsonl of {id, text}, a file or a folder of sources (default: ${HELD_OUT_FILES}, else engine/).`,
  ].join('\n'),
  positionals: [{ name: 'model', description: 'Model folder, or builtin.', required: true }],
  options: {
    source: { type: 'string', valueName: 'path', description: 'Source texts to cut canvases from.' },
    ratios: { type: 'string', description: 'Prefix ratios, comma-separated.', defaultText: '0.1,...,0.9 that fit' },
    threshold: { type: 'number', description: 'Cosine similarity a reusable layer needs.', defaultText: String(BICACHE_THRESHOLD) },
    samples: { type: 'integer', description: 'Canvases per ratio.', defaultText: '8' },
    canvas: { type: 'integer', description: 'Canvas length in tokens, masks included.', defaultText: `${DEFAULT_PROFILE_CANVAS} or the model's positions` },
    fill: { type: 'integer', description: 'Masks per canvas.', defaultText: String(DEFAULT_PROFILE_FILL) },
    seed: { type: 'integer', description: 'Seed of the canvas offsets.', defaultText: '0' },
    variant: { type: 'string', valueName: 'file', description: "Graph variant to profile.", defaultText: "the CPU's" },
    json: { type: 'string', valueName: 'file', description: 'Also write the profile to this file.' },
    ...DEVICE_FLAG,
  },
  async run({ options, positionals }) {
    const source = stringOption(options, 'source') ?? defaultSourcePath();
    if (!source) throw new UsageError(`No source texts: pass --source (no ${HELD_OUT_FILES} or engine/ here).`);
    const dir = await resolveModel(positionals[0], { cacheDir: defaultCacheDir() });
    let lastPercent = -1;
    const profile = await prepareModelForReuse(dir, {
      device: deviceOption(options),
      variant: stringOption(options, 'variant'),
      source,
      ratios: ratiosOption(stringOption(options, 'ratios')),
      threshold: numberOption(options, 'threshold'),
      samplesPerRatio: numberOption(options, 'samples'),
      canvasTokens: numberOption(options, 'canvas'),
      fillTokens: numberOption(options, 'fill'),
      seed: numberOption(options, 'seed'),
      onProgress: (done, total) => {
        const percent = Math.floor((100 * done) / total);
        if (percent >= lastPercent + 10 || done === total) {
          lastPercent = percent;
          process.stderr.write(`[profile-depth] ${done}/${total} canvases\n`);
        }
      },
    });
    process.stdout.write(
      `${profile.variant}, ${profile.samplesPerRatio} canvases of ${profile.canvasTokens} tokens (${profile.fillTokens} masks) ` +
        `per ratio from ${profile.source}; threshold ${profile.threshold}\n`,
    );
    process.stdout.write(formatDepthProfile(profile));
    const overhead = await measureCallOverhead(dir, deviceOption(options), profile.variant);
    const ms = (x: number) => x.toFixed(3);
    process.stdout.write(
      `call overhead (one row, no context): step graph ${ms(overhead.stepGraphMs)} ms, depth-wise ${ms(overhead.segmentsMs)} ms ` +
        `(${ms(overhead.perSegmentCallMs)} ms per segment call)\n`,
    );
    process.stderr.write(`[profile-depth] wrote ${dir}/${DEPTH_PROFILE_FILE} and the segment graphs\n`);
    const json = stringOption(options, 'json');
    if (json) writeFileSync(json, `${JSON.stringify(profile, null, 2)}\n`);
    return EXIT_OK;
  },
};

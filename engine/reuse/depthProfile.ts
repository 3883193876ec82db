/**
 * The depth profile as the engine reads it at request time: per prefix ratio r, the safe depth b(r) below which
 * a shared prefix's K/V may be reused across requests (BiCache). It is measured offline by
 * prepare/depthProfiler.ts and stored beside the graphs in the model folder (`depth-profile.json`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJsonFile } from '../model/jsonFile';

export const DEPTH_PROFILE_FILE = 'depth-profile.json';
export const DEPTH_PROFILE_FORMAT = 'dlm-depth-profile/1';

export interface RatioProfile {
  ratio: number;
  /** Per layer: mean over samples and prefix tokens of (cos K + cos V) / 2, heads flattened. */
  similarity: number[];
  /** Leading layers at or above the threshold at this ratio. */
  measuredDepth: number;
  /** The depth used at run time: monotone in the ratio, never above any deeper ratio's measured depth. */
  safeDepth: number;
}

export interface DepthProfile {
  format: typeof DEPTH_PROFILE_FORMAT;
  /** The graph variant profiled. */
  variant: string;
  threshold: number;
  canvasTokens: number;
  fillTokens: number;
  samplesPerRatio: number;
  /** What the canvases were cut from. */
  source: string;
  ratios: RatioProfile[];
}

/** The safe depth for a request whose shared prefix is `ratio` of its canvas: BiCache's largest ratio <= it. */
export function safeDepthFor(profile: DepthProfile, ratio: number): number {
  let depth = 0;
  for (const entry of profile.ratios) if (entry.ratio <= ratio) depth = entry.safeDepth;
  return depth;
}

/** The depths any request may use, above 0 and below the last layer: the hidden states worth storing. */
export function usedDepths(profile: DepthProfile, numLayers: number): number[] {
  return [...new Set(profile.ratios.map((r) => r.safeDepth))].filter((d) => d > 0 && d < numLayers).sort((a, b) => a - b);
}

/** The folder's profile, or null when it has none; a malformed one is an error naming the file. */
export function readDepthProfile(modelDir: string, numLayers: number): DepthProfile | null {
  const file = path.join(modelDir, DEPTH_PROFILE_FILE);
  if (!fs.existsSync(file)) return null;
  const profile = readJsonFile(file, 'depth profile') as DepthProfile | null;
  const valid =
    typeof profile === 'object' &&
    profile !== null &&
    profile.format === DEPTH_PROFILE_FORMAT &&
    Array.isArray(profile.ratios) &&
    profile.ratios.every((r) => typeof r === 'object' && r !== null && typeof r.ratio === 'number' && Number.isInteger(r.safeDepth) && r.safeDepth >= 0 && r.safeDepth <= numLayers);
  if (!valid) throw new Error(`${file} is not a depth profile for a ${numLayers}-layer model (format ${DEPTH_PROFILE_FORMAT})`);
  return profile;
}

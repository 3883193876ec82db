/**
 * The depth-wise segments of a graph variant as the engine finds them in a model folder: their file names
 * (beside the variant's step graph) and the names of the hidden-state input and output they add to the step
 * contract. prepare/segmentGraphs.ts cuts them out of the step graph; segmentedModel.ts runs them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GraphVariant } from '../model/manifest';

export const SegmentIo = { hiddenIn: 'hidden_in', hiddenOut: 'hidden_out' } as const;

export interface SegmentFiles {
  embed: string;
  layers: string[];
  head: string;
}

/** e.g. `step.fp32.float32.gqa.logits.seg-layer3.onnx`, beside the variant's step graph. */
export function segmentFileNames(variant: Pick<GraphVariant, 'file'>, numLayers: number): SegmentFiles {
  const base = variant.file.replace(/\.onnx$/, '');
  return {
    embed: `${base}.seg-embed.onnx`,
    layers: Array.from({ length: numLayers }, (_, l) => `${base}.seg-layer${l}.onnx`),
    head: `${base}.seg-head.onnx`,
  };
}

export function hasSegmentGraphs(modelDir: string, variant: GraphVariant, numLayers: number): boolean {
  const files = segmentFileNames(variant, numLayers);
  return [files.embed, ...files.layers, files.head].every((f) => fs.existsSync(path.join(modelDir, f)));
}

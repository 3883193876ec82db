/**
 * Writes the depth-wise segments of a step graph, for prefix reuse (BiCache), which runs the layers below a depth
 * b on other rows than the layers from b up. Cut out of the model's own step graph, one ONNX file each (named
 * and read as reuse/segmentFiles.ts says):
 *
 *   embed      input_ids [1, Q]                                            -> hidden_out [1, Q, H]
 *   layer l    hidden_in [1, Q, H], position_ids, attention_bias,         -> hidden_out [1, Q, H],
 *              past_key.l, past_value.l (as in stepContract.ts)               new_key.l, new_value.l
 *   head       hidden_in [1, Q, H], logits_index [1, R]                   -> the step graph's head outputs
 *
 * Cutting (rather than building the layers a second time) gives segments with exactly the step graph's nodes
 * and weights, whatever its lowering, precision or head, for any model folder, without its source weights; the
 * cuts are the residual-stream values the builder names (stepGraphBuilder.ts `ResidualNodes`). The segments
 * reference the weights in the step graph's external data file rather than copying them; a step graph with its
 * weights inline (models under the builder's external-data threshold) first gets them moved to that file, the
 * graph itself unchanged, so reuse costs no disk for weights. The monolithic step graph stays the path of every
 * other cache policy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { ResidualNodes, StepDims } from '../graph/stepGraphBuilder';
import { StepInput, StepOutput } from '../graph/stepContract';
import { onnxDataType } from '../graph/onnxWriter';
import type { ModelArchitecture } from '../architecture/architecture';
import type { GraphVariant } from '../model/manifest';
import { SegmentIo, segmentFileNames, type SegmentFiles } from '../reuse/segmentFiles';

interface SegmentSpec {
  kind: 'embed' | 'layer' | 'head';
  layer?: number;
  /** The value that becomes the `hidden_in` input (absent for the embedding). */
  hiddenIn?: string;
  /** Values the segment returns, under these output names. */
  outputs: { value: string; as: string }[];
  /** Graph inputs of the step graph the segment may read. */
  allowedInputs: string[];
}

/** Tensors below this size stay inline (norm scales, biases, shape constants), as the graph builder keeps them. */
const INLINE_LIMIT_BYTES = 1024;
/** External tensors start on 64 KiB boundaries so onnxruntime can memory-map them (as the builder writes them). */
const EXTERNAL_ALIGNMENT = 65536;

/**
 * Moves the step graph's large inline initializers to `<file>_data` (appended after any external data it
 * already has) and rewrites the graph to reference them: the same model, its weights where segments can share
 * them. Written beside the original and renamed over it, so a reader never sees half a file.
 */
function externalizeWeights(modelDir: string, stepFile: string, model: onnx.IModelProto): void {
  const large = (model.graph!.initializer ?? []).filter((t) => t.rawData && t.rawData.length >= INLINE_LIMIT_BYTES);
  if (large.length === 0) return;
  const location = `${path.basename(stepFile)}_data`;
  const dataFile = path.join(modelDir, location);
  let offset = fs.existsSync(dataFile) ? fs.statSync(dataFile).size : 0;
  const fd = fs.openSync(dataFile, 'a');
  try {
    for (const tensor of large) {
      const bytes = tensor.rawData!;
      const padding = (EXTERNAL_ALIGNMENT - (offset % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
      if (padding) fs.writeSync(fd, new Uint8Array(padding));
      offset += padding;
      fs.writeSync(fd, bytes);
      tensor.rawData = new Uint8Array(0);
      tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      tensor.externalData = [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(bytes.length) },
      ];
      offset += bytes.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.writeFileSync(`${stepFile}.tmp`, onnx.ModelProto.encode(model).finish());
  fs.renameSync(`${stepFile}.tmp`, stepFile);
}

/** Writes the segments of one variant's step graph into the model folder and returns their file names. */
export function writeSegmentGraphs(modelDir: string, variant: GraphVariant, arch: ModelArchitecture): SegmentFiles {
  const stepFile = path.join(modelDir, variant.file);
  const model = onnx.ModelProto.decode(fs.readFileSync(stepFile));
  externalizeWeights(modelDir, stepFile, model);
  const graph = model.graph;
  if (!graph?.node) throw new Error(`${stepFile} has no graph`);
  const nodes = graph.node;
  const nodeNamed = (name: string) => {
    const node = nodes.find((n) => n.name === name);
    if (!node) throw new Error(`${variant.file} has no node ${name}: it was not written by this engine's step graph builder`);
    return node;
  };
  const L = arch.numLayers;
  // entering[l] = hidden state entering layer l; entering[L] = leaving the last layer.
  const entering = Array.from({ length: L }, (_, l) => nodeNamed(ResidualNodes.attention(l)).input![0]);
  entering.push(nodeNamed(ResidualNodes.mlp(L - 1)).output![0]);

  const headOutputs = (graph.output ?? [])
    .map((o) => o.name!)
    .filter((name) => !name.startsWith('new_key.') && !name.startsWith('new_value.'));
  const specs: SegmentSpec[] = [
    { kind: 'embed', outputs: [{ value: entering[0], as: SegmentIo.hiddenOut }], allowedInputs: [StepInput.inputIds] },
    ...Array.from({ length: L }, (_, l): SegmentSpec => ({
      kind: 'layer',
      layer: l,
      hiddenIn: entering[l],
      outputs: [
        { value: entering[l + 1], as: SegmentIo.hiddenOut },
        { value: StepOutput.newKey(l), as: StepOutput.newKey(l) },
        { value: StepOutput.newValue(l), as: StepOutput.newValue(l) },
      ],
      allowedInputs: [StepInput.positionIds, StepInput.attentionBias, StepInput.pastKey(l), StepInput.pastValue(l)],
    })),
    { kind: 'head', hiddenIn: entering[L], outputs: headOutputs.map((value) => ({ value, as: value })), allowedInputs: [StepInput.logitsIndex] },
  ];

  const files = segmentFileNames(variant, L);
  const names = [files.embed, ...files.layers, files.head];
  specs.forEach((spec, i) => {
    const segment = cutSegment(model, spec, variant, arch);
    fs.writeFileSync(path.join(modelDir, names[i]), onnx.ModelProto.encode(segment).finish());
  });
  return files;
}

/**
 * Values a node's subgraphs (the branches of the hybrid lowering's `If`) read from the enclosing graph: they are
 * not in the node's input list, and a cut that followed that list alone would leave them without a producer.
 */
function outerScopeInputs(node: onnx.INodeProto): string[] {
  const read: string[] = [];
  for (const attribute of node.attribute ?? []) {
    for (const sub of [attribute.g, ...(attribute.graphs ?? [])]) {
      if (!sub) continue;
      const produced = new Set<string>([...(sub.initializer ?? []).map((t) => t.name!), ...(sub.input ?? []).map((v) => v.name!)]);
      for (const n of sub.node ?? []) n.output?.forEach((o) => produced.add(o));
      const reads = [...(sub.node ?? []).flatMap((n) => [...(n.input ?? []), ...outerScopeInputs(n)]), ...(sub.output ?? []).map((o) => o.name!)];
      for (const value of reads) if (value && !produced.has(value)) read.push(value);
    }
  }
  return read;
}

/** The sub-model computing `spec.outputs` from `spec.hiddenIn` and the allowed step-graph inputs. */
function cutSegment(model: onnx.IModelProto, spec: SegmentSpec, variant: GraphVariant, arch: ModelArchitecture): onnx.IModelProto {
  const graph = model.graph!;
  const nodes = graph.node!;
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.output?.forEach((o) => o && producer.set(o, i)));
  const initializers = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const graphInputs = new Map((graph.input ?? []).map((v) => [v.name!, v]));
  const graphOutputs = new Map((graph.output ?? []).map((v) => [v.name!, v]));

  const keep = new Set<number>();
  const usedInputs = new Set<string>();
  const usedInitializers = new Set<string>();
  const pending = spec.outputs.map((o) => o.value);
  const seen = new Set<string>();
  while (pending.length) {
    const value = pending.pop()!;
    if (value === '' || seen.has(value)) continue;
    seen.add(value);
    if (value === spec.hiddenIn) continue;
    if (initializers.has(value)) usedInitializers.add(value);
    else if (graphInputs.has(value)) usedInputs.add(value);
    else {
      const index = producer.get(value);
      if (index === undefined) throw new Error(`${variant.file}: value ${value} has no producer`);
      if (!keep.has(index)) {
        keep.add(index);
        pending.push(...(nodes[index].input ?? []), ...outerScopeInputs(nodes[index]));
      }
    }
  }
  const stray = [...usedInputs].filter((name) => !spec.allowedInputs.includes(name));
  if (stray.length) {
    throw new Error(`${variant.file}: the ${spec.kind}${spec.layer ?? ''} segment would read ${stray.join(', ')}; the graph cannot be cut there`);
  }

  const rename = new Map<string, string>(spec.outputs.map((o) => [o.value, o.as]));
  if (spec.hiddenIn) rename.set(spec.hiddenIn, SegmentIo.hiddenIn);
  const renamed = (v: string) => rename.get(v) ?? v;
  for (const index of keep) {
    const hidden = outerScopeInputs(nodes[index]).filter((v) => renamed(v) !== v);
    if (hidden.length) throw new Error(`${variant.file}: a subgraph of ${nodes[index].name} reads ${hidden.join(', ')}, which the cut renames`);
  }
  const segmentNodes = nodes
    .filter((_, i) => keep.has(i))
    .map((n) => ({ ...n, input: (n.input ?? []).map(renamed), output: (n.output ?? []).map(renamed) }));

  const hiddenType = (name: string): onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: onnxDataType(variant.cacheDtype),
        shape: { dim: [{ dimValue: 1 }, { dimParam: StepDims.query }, { dimValue: arch.hiddenSize }] },
      },
    },
  });
  const inputs = [
    ...(spec.hiddenIn ? [hiddenType(SegmentIo.hiddenIn)] : []),
    ...spec.allowedInputs.filter((name) => usedInputs.has(name)).map((name) => graphInputs.get(name)!),
  ];
  const outputs = spec.outputs.map((o) => (o.as === SegmentIo.hiddenOut ? hiddenType(o.as) : { ...graphOutputs.get(o.value)!, name: o.as }));

  const metadata = (model.metadataProps ?? []).filter((m) => !m.key?.startsWith('dlm.segment'));
  metadata.push({ key: 'dlm.segment', value: spec.kind });
  if (spec.layer !== undefined) metadata.push({ key: 'dlm.segment_layer', value: String(spec.layer) });
  return {
    irVersion: model.irVersion,
    opsetImport: model.opsetImport,
    producerName: model.producerName,
    docString: `Depth-wise segment (${spec.kind}${spec.layer === undefined ? '' : ` ${spec.layer}`}) of ${variant.file}, engine/prepare/segmentGraphs.ts`,
    graph: {
      name: `${graph.name}_${spec.kind}${spec.layer ?? ''}`,
      node: segmentNodes,
      input: inputs,
      output: outputs,
      initializer: [...usedInitializers].map((name) => initializers.get(name)!),
    },
    metadataProps: metadata,
  };
}

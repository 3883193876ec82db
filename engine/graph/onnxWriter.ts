/**
 * A thin layer over `onnx-proto` for building one ONNX model: nodes with generated value names, graph inputs
 * and outputs with symbolic dims, initializers kept inline or streamed tensor by tensor into an external data
 * file (so a 7B model never sits in memory as one protobuf, which is capped at 2 GB anyway).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';

export type ElementType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'int8';
/** A fixed size, or the name of a symbolic dimension. */
export type Dim = number | string;

const DATA_TYPE: Record<ElementType, onnx.TensorProto.DataType> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
};

export function onnxDataType(type: ElementType): number {
  return DATA_TYPE[type];
}

export type Attribute =
  | { int: number }
  | { float: number }
  | { ints: number[] }
  | { floats: number[] }
  | { string: string }
  /** A subgraph, e.g. a branch of an `If` (`OnnxGraphBuilder.subgraph`). */
  | { graph: onnx.IGraphProto };

/** Tensor contents in their final element type (fp16 as raw half bits). */
export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

/** Where initializers go: inline in the protobuf, or appended to `<model>.onnx_data`. */
export type InitializerPlacement = 'inline' | 'external';

/** Tensors below this size stay inline even with external data (norm scales, biases, shape constants). */
const INLINE_LIMIT_BYTES = 1024;
/** External tensors start on 64 KiB boundaries so onnxruntime can memory-map them on every OS. */
const EXTERNAL_ALIGNMENT = 65536;

class ExternalDataFile {
  readonly location: string;
  private fd: number;
  private offset = 0;

  constructor(modelPath: string) {
    this.location = `${path.basename(modelPath)}_data`;
    this.fd = fs.openSync(path.join(path.dirname(modelPath), this.location), 'w');
  }

  /** Appends one tensor's bytes and returns where they went. */
  append(bytes: Uint8Array): { offset: number; length: number } {
    const offset = Math.ceil(this.offset / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
    let written = 0;
    while (written < bytes.length) {
      written += fs.writeSync(this.fd, bytes, written, bytes.length - written, offset + written);
    }
    this.offset = offset + bytes.length;
    return { offset, length: bytes.length };
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorType(type: ElementType, dims: Dim[]): onnx.ITypeProto {
  return {
    tensorType: {
      elemType: DATA_TYPE[type],
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
    },
  };
}

function toAttributeProto(name: string, value: Attribute): onnx.IAttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if ('int' in value) return { name, type: A.INT, i: value.int };
  if ('float' in value) return { name, type: A.FLOAT, f: value.float };
  if ('ints' in value) return { name, type: A.INTS, ints: value.ints };
  if ('floats' in value) return { name, type: A.FLOATS, floats: value.floats };
  if ('graph' in value) return { name, type: A.GRAPH, g: value.graph };
  return { name, type: A.STRING, s: new TextEncoder().encode(value.string) };
}

export interface NodeOptions {
  attrs?: Record<string, Attribute>;
  domain?: string;
  /** Number of outputs to name automatically, or explicit names ('' leaves an optional output unset). */
  outputs?: number | string[];
  /** Readable prefix for the node and its generated output names. */
  name?: string;
}

export interface ModelOptions {
  /** `ai.onnx` opset version. */
  opset: number;
  /** Other domains used, e.g. `{ 'com.microsoft': 1 }`. */
  extraOpsets?: Record<string, number>;
  metadata?: Record<string, string>;
  producer?: string;
  docString?: string;
}

export class OnnxGraphBuilder {
  /** Where `node()` adds to: the main graph's nodes, or those of the subgraph being built. */
  private nodes: onnx.INodeProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly usedNames = new Set<string>();
  private readonly int64Constants = new Map<string, string>();
  private readonly externalFile: ExternalDataFile | null;
  private externalBytes = 0;

  /**
   * @param modelPath where `write()` will put the model; with `external` placement the data file
   *   `<modelPath>_data` is created next to it right away and filled as initializers are added.
   */
  constructor(
    private readonly modelPath: string,
    placement: InitializerPlacement,
    private readonly graphName = 'graph',
  ) {
    this.externalFile = placement === 'external' ? new ExternalDataFile(modelPath) : null;
  }

  /** A fresh value/node name starting with `base`. */
  uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.usedNames.has(name); i++) name = `${base}_${i}`;
    this.usedNames.add(name);
    return name;
  }

  input(name: string, type: ElementType, dims: Dim[]): string {
    this.claim(name);
    this.inputs.push({ name, type: tensorType(type, dims) });
    return name;
  }

  /** Declares `value` (already produced by a node) as a graph output. */
  output(value: string, type: ElementType, dims: Dim[]): void {
    this.outputs.push({ name: value, type: tensorType(type, dims) });
  }

  /** Adds a constant tensor; large ones are written to the external data file immediately. */
  initializer(name: string, type: ElementType, dims: number[], data: TensorData): string {
    this.claim(name);
    return this.addInitializer(name, type, dims, data);
  }

  /** An int64 constant (shape vectors, axes); equal constants are shared. */
  constInt64(base: string, values: number[], dims: number[] = [values.length]): string {
    const key = `${dims.join(',')}:${values.join(',')}`;
    let name = this.int64Constants.get(key);
    if (!name) {
      name = this.addInitializer(this.uniqueName(base), 'int64', dims, BigInt64Array.from(values, (v) => BigInt(v)));
      this.int64Constants.set(key, name);
    }
    return name;
  }

  /** A constant of `type` under a generated name (e.g. a scalar in the activation dtype). */
  constant(base: string, type: ElementType, dims: number[], data: TensorData): string {
    return this.addInitializer(this.uniqueName(base), type, dims, data);
  }

  private addInitializer(name: string, type: ElementType, dims: number[], data: TensorData): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (data.length !== count) {
      throw new Error(`initializer ${name}: ${data.length} elements for shape [${dims.join(', ')}]`);
    }
    const tensor: onnx.ITensorProto = { name, dims, dataType: DATA_TYPE[type] };
    const bytes = bytesOf(data);
    if (this.externalFile && bytes.length >= INLINE_LIMIT_BYTES) {
      const { offset, length } = this.externalFile.append(bytes);
      this.externalBytes += length;
      tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      tensor.externalData = [
        { key: 'location', value: this.externalFile.location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(length) },
      ];
    } else {
      // Copy: the caller may reuse its buffer, and protobufjs reads raw_data only at encode time.
      tensor.rawData = bytes.slice();
    }
    this.initializers.push(tensor);
    return name;
  }

  /** Adds a node and returns its output names. */
  node(opType: string, inputs: string[], options: NodeOptions = {}): string[] {
    const name = this.uniqueName(options.name ?? opType);
    const outputSpec = options.outputs ?? 1;
    const outputs =
      typeof outputSpec === 'number'
        ? Array.from({ length: outputSpec }, (_, i) => (outputSpec === 1 ? name : `${name}:${i}`))
        : outputSpec;
    if (typeof outputSpec !== 'number') for (const o of outputs) if (o !== '') this.claim(o);
    this.nodes.push({
      name,
      opType,
      domain: options.domain ?? '',
      input: inputs,
      output: outputs,
      attribute: Object.entries(options.attrs ?? {}).map(([k, v]) => toAttributeProto(k, v)),
    });
    return outputs;
  }

  /** Adds a single-output node and returns the output name. */
  op(opType: string, inputs: string[], options: Omit<NodeOptions, 'outputs'> = {}): string {
    return this.node(opType, inputs, options)[0];
  }

  /**
   * A subgraph whose nodes are those `build` adds; they may read every value of the enclosing graph (initializers
   * included: constants made while building land in the main graph). `build` returns the one value it outputs.
   */
  subgraph(name: string, type: ElementType, dims: Dim[], build: () => string): onnx.IGraphProto {
    const enclosing = this.nodes;
    this.nodes = [];
    try {
      const output = build();
      return { name: this.uniqueName(name), node: this.nodes, output: [{ name: output, type: tensorType(type, dims) }] };
    } finally {
      this.nodes = enclosing;
    }
  }

  /** Encodes the model to `modelPath` and closes the external data file. */
  write(options: ModelOptions): { protobufBytes: number; externalBytes: number } {
    this.externalFile?.close();
    const bytes = this.encode(options);
    fs.writeFileSync(this.modelPath, bytes);
    return { protobufBytes: bytes.length, externalBytes: this.externalBytes };
  }

  /** The encoded model, for small graphs built at run time and handed to onnxruntime as bytes. */
  encode(options: ModelOptions): Uint8Array {
    const opsetImport: onnx.IOperatorSetIdProto[] = [{ domain: '', version: options.opset }];
    for (const [domain, version] of Object.entries(options.extraOpsets ?? {})) opsetImport.push({ domain, version });
    const model: onnx.IModelProto = {
      // IR 8 is the version that goes with opset 17 (onnx/onnx docs/Versioning.md).
      irVersion: 8,
      opsetImport,
      producerName: options.producer ?? 'dlm-complete',
      docString: options.docString ?? '',
      graph: {
        name: this.graphName,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
      metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    };
    return onnx.ModelProto.encode(model).finish();
  }

  /** Reserves a caller-chosen name (graph I/O, weights); generated names never collide with it. */
  private claim(name: string): void {
    if (this.usedNames.has(name)) throw new Error(`duplicate ONNX value name ${name}`);
    this.usedNames.add(name);
  }
}

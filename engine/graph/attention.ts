/**
 * Rotary embedding and bidirectional attention over (cached rows ⊕ query rows), in three lowerings with the
 * same I/O contract:
 *
 * - `gqa`: com.microsoft.RotaryEmbedding + com.microsoft.GroupQueryAttention (causal=0, do_rotary=0).
 *   GroupQueryAttention silently computes wrong attention when it is given past K/V but its present
 *   outputs are not wired (seen with onnxruntime 1.30; test/engine/graphStep.test.ts holds cached steps to full
 *   passes), so the present outputs are always declared, as
 *   internal values that are not graph outputs.
 * - `decomposed`: plain ONNX ops only (RoPE from gathered cos/sin rows, Concat, MatMul, Add, Softmax), for
 *   execution providers where the contrib kernels are missing or unverified. Query heads are grouped per
 *   K/V head by a reshape instead of repeating K/V, so nothing [Hkv·g, T, D]-sized is materialised.
 * - `hybrid`: RotaryEmbedding, then an `If` per layer: GroupQueryAttention when the call has no cached rows (a
 *   full pass), the plain ops of `decomposed` when it has. On onnxruntime's CPU provider GroupQueryAttention is
 *   the faster of the two on full passes, and the slower by far on a few query rows over many cached ones
 *   (README, "The cost of one step": 0.9-1.6 ms against about 0.35 ms a layer for 1 row over 1,400).
 *
 * RoPE is the non-interleaved `rotate_half` form with arbitrary per-row positions; new keys leave the graph
 * after RoPE, so cached rows never need their positions again.
 */
import { computeScalar, computeTensor, type GraphContext } from './graphContext';
import { onnxDataType } from './onnxWriter';
import type { AttentionLowering } from './stepContract';

const MS = 'com.microsoft';

/** Values computed once per graph and used by every layer. */
export interface AttentionShared {
  lowering: AttentionLowering;
  positionIds: string;
  attentionBias: string;
  /** [maxPositions, D/2] tables in the activation dtype. */
  cosTable: string;
  sinTable: string;
  /** gqa: `seqlens_k` ([1] int32, C+Q-1) and `total_sequence_length` (int32 scalar, C+Q). */
  seqlensK?: string;
  totalLength?: string;
  /** decomposed: cos/sin rows of this call's positions, [1, Q, 1, D/2]. */
  cosRows?: string;
  sinRows?: string;
  /** decomposed, hybrid: attention_bias tiled over the query heads of one K/V group, [1, 1, g·Q, C+Q]. */
  groupedBias?: string;
  /** hybrid: [1] bool, true when the call has no cached rows (C = 0). */
  fullPass?: string;
}

/** cos/sin of `position · θ^(-2i/D)` for i < D/2, computed in float64 (rotate_half layout, as Hugging Face). */
export function ropeTables(headDim: number, theta: number, maxPositions: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let i = 0; i < half; i++) {
    const inverseFrequency = Math.pow(theta, (-2 * i) / headDim);
    for (let p = 0; p < maxPositions; p++) {
      cos[p * half + i] = Math.cos(p * inverseFrequency);
      sin[p * half + i] = Math.sin(p * inverseFrequency);
    }
  }
  return { cos, sin };
}

export function prepareAttention(
  ctx: GraphContext,
  lowering: AttentionLowering,
  positionIds: string,
  attentionBias: string,
): AttentionShared {
  const { g, arch } = ctx;
  const half = arch.headDim / 2;
  const tables = ropeTables(arch.headDim, arch.ropeTheta, arch.maxPositions);
  const cosTable = computeTensor(ctx, 'rope.cos', [arch.maxPositions, half], tables.cos);
  const sinTable = computeTensor(ctx, 'rope.sin', [arch.maxPositions, half], tables.sin);
  const shared: AttentionShared = { lowering, positionIds, attentionBias, cosTable, sinTable };

  if (lowering !== 'decomposed') {
    // T = C+Q is the last dim of attention_bias; GroupQueryAttention wants it as int32.
    const total = g.op('Shape', [attentionBias], { attrs: { start: { int: 3 } }, name: 'total_length.shape' });
    const total32 = g.op('Cast', [total], { attrs: { to: { int: onnxDataType('int32') } }, name: 'total_length.int32' });
    const one = g.constant('one_int32', 'int32', [1], Int32Array.of(1));
    shared.seqlensK = g.op('Sub', [total32, one], { name: 'seqlens_k' });
    shared.totalLength = g.op('Squeeze', [total32], { name: 'total_sequence_length' });
    if (lowering === 'gqa') return shared;
    const queryRows = g.op('Shape', [attentionBias], { attrs: { start: { int: 2 }, end: { int: 3 } }, name: 'query_rows.shape' });
    shared.fullPass = g.op('Equal', [total, queryRows], { name: 'full_pass' });
  } else {
    const rowsShape = g.constInt64('rope.rows_shape', [1, -1, 1, half]);
    shared.cosRows = g.op('Reshape', [g.op('Gather', [cosTable, positionIds], { name: 'rope.cos_rows' }), rowsShape]);
    shared.sinRows = g.op('Reshape', [g.op('Gather', [sinTable, positionIds], { name: 'rope.sin_rows' }), rowsShape]);
  }
  const group = arch.numHeads / arch.numKvHeads;
  shared.groupedBias =
    group === 1
      ? attentionBias
      : g.op('Tile', [attentionBias, g.constInt64('attention_bias.group_repeats', [1, 1, group, 1])], {
          name: 'attention_bias.grouped',
        });
  return shared;
}

export interface LayerAttention {
  layer: number;
  /** [1, Q, H·D], before RoPE. */
  query: string;
  /** [1, Q, Hkv·D], before RoPE. */
  key: string;
  /** [1, Q, Hkv·D]. */
  value: string;
  /** Graph inputs [1, Hkv, C, D]. */
  pastKey: string;
  pastValue: string;
  /** Names the new K/V values must carry (they are graph outputs). */
  newKeyName: string;
  newValueName: string;
}

/** Adds one layer's attention; returns the attention output [1, Q, H·D] (before o_proj). */
export function addAttention(ctx: GraphContext, shared: AttentionShared, a: LayerAttention): string {
  switch (shared.lowering) {
    case 'gqa':
      return addGroupQueryAttention(ctx, shared, a);
    case 'decomposed':
      return addDecomposedAttention(ctx, shared, a);
    case 'hybrid':
      return addHybridAttention(ctx, shared, a);
  }
}

/** [1, Q, n·D] → [1, n, Q, D] under an explicit output name (or a generated one). */
function toHeadsFirst(ctx: GraphContext, value: string, heads: number, outputName?: string): string {
  const { g, arch } = ctx;
  const split = g.op('Reshape', [value, g.constInt64('heads_shape', [1, -1, heads, arch.headDim])]);
  return g.node('Transpose', [split], {
    attrs: { perm: { ints: [0, 2, 1, 3] } },
    ...(outputName ? { outputs: [outputName], name: `${outputName}.transpose` } : {}),
  })[0];
}

/** RotaryEmbedding over the query and key rows ([1, Q, n·D]); the new K/V graph outputs are cut from them. */
function rotateWithContribOp(ctx: GraphContext, shared: AttentionShared, a: LayerAttention) {
  const { g, arch } = ctx;
  const prefix = `layers.${a.layer}.attn`;
  const rotary = (input: string, heads: number, name: string) =>
    g.op('RotaryEmbedding', [input, shared.positionIds, shared.cosTable, shared.sinTable], {
      domain: MS,
      attrs: { interleaved: { int: 0 }, num_heads: { int: heads } },
      name,
    });
  const query = rotary(a.query, arch.numHeads, `${prefix}.rotary_q`);
  const key = rotary(a.key, arch.numKvHeads, `${prefix}.rotary_k`);
  const newKey = toHeadsFirst(ctx, key, arch.numKvHeads, a.newKeyName);
  const newValue = toHeadsFirst(ctx, a.value, arch.numKvHeads, a.newValueName);
  return { prefix, query, key, newKey, newValue };
}

/** GroupQueryAttention over rotated [1, Q, n·D] query/key rows and the past K/V. */
function groupQueryAttention(
  ctx: GraphContext,
  shared: AttentionShared,
  a: LayerAttention,
  prefix: string,
  query: string,
  key: string,
): string {
  const { g, arch } = ctx;
  const [output] = g.node(
    'GroupQueryAttention',
    [
      query, key, a.value, a.pastKey, a.pastValue, shared.seqlensK!, shared.totalLength!,
      '', '', '', // cos_cache, sin_cache, position_ids: RoPE is already applied
      shared.attentionBias,
    ],
    {
      domain: MS,
      attrs: {
        num_heads: { int: arch.numHeads },
        kv_num_heads: { int: arch.numKvHeads },
        causal: { int: 0 },
        do_rotary: { int: 0 },
        scale: { float: 1 / Math.sqrt(arch.headDim) },
      },
      // present_key/present_value must be wired (B.7), even though nothing reads them.
      outputs: [`${prefix}.output`, `${prefix}.present_key`, `${prefix}.present_value`],
      name: `${prefix}.gqa`,
    },
  );
  return output;
}

function addGroupQueryAttention(ctx: GraphContext, shared: AttentionShared, a: LayerAttention): string {
  const { prefix, query, key } = rotateWithContribOp(ctx, shared, a);
  return groupQueryAttention(ctx, shared, a, prefix, query, key);
}

/**
 * Plain-op attention of heads-first query rows [1, H, Q, D] over past ⊕ new K/V ([1, Hkv, ·, D]); returns
 * [1, Q, H·D].
 */
function plainAttention(
  ctx: GraphContext,
  shared: AttentionShared,
  a: LayerAttention,
  prefix: string,
  queryHeadsFirst: string,
  newKey: string,
  newValue: string,
): string {
  const { g, arch } = ctx;
  const { numHeads: heads, numKvHeads: kvHeads, headDim } = arch;
  const scale = computeScalar(ctx, 'attention_scale', 1 / Math.sqrt(headDim));
  const query = g.op('Mul', [queryHeadsFirst, scale]);
  const keys = g.op('Concat', [a.pastKey, newKey], { attrs: { axis: { int: 2 } }, name: `${prefix}.keys` });
  const values = g.op('Concat', [a.pastValue, newValue], { attrs: { axis: { int: 2 } }, name: `${prefix}.values` });
  // Query heads h = kv·g + j share K/V head kv: view them as g·Q rows of that K/V head.
  const grouped = g.op('Reshape', [query, g.constInt64('grouped_shape', [1, kvHeads, -1, headDim])]);
  const keysT = g.op('Transpose', [keys], { attrs: { perm: { ints: [0, 1, 3, 2] } } });
  const scores = g.op('Add', [g.op('MatMul', [grouped, keysT], { name: `${prefix}.scores` }), shared.groupedBias!]);
  const probs = g.op('Softmax', [scores], { attrs: { axis: { int: -1 } }, name: `${prefix}.softmax` });
  const context = g.op('MatMul', [probs, values], { name: `${prefix}.context` }); // [1, Hkv, g·Q, D]
  const perHead = g.op('Reshape', [context, g.constInt64('per_head_shape', [1, heads, -1, headDim])]);
  const rows = g.op('Transpose', [perHead], { attrs: { perm: { ints: [0, 2, 1, 3] } } }); // [1, Q, H, D]
  return g.op('Reshape', [rows, g.constInt64('merged_shape', [1, -1, heads * headDim])], { name: `${prefix}.output` });
}

function addHybridAttention(ctx: GraphContext, shared: AttentionShared, a: LayerAttention): string {
  const { g, arch } = ctx;
  const { prefix, query, key, newKey, newValue } = rotateWithContribOp(ctx, shared, a);
  const rows = [1, 'rows', arch.numHeads * arch.headDim];
  const fullPass = g.subgraph(`${prefix}.full_pass`, ctx.compute, rows, () =>
    groupQueryAttention(ctx, shared, a, prefix, query, key),
  );
  const cachedRows = g.subgraph(`${prefix}.cached_rows`, ctx.compute, rows, () =>
    plainAttention(ctx, shared, a, prefix, toHeadsFirst(ctx, query, arch.numHeads), newKey, newValue),
  );
  return g.op('If', [shared.fullPass!], {
    attrs: { then_branch: { graph: fullPass }, else_branch: { graph: cachedRows } },
    name: `${prefix}.if_full_pass`,
  });
}

function addDecomposedAttention(ctx: GraphContext, shared: AttentionShared, a: LayerAttention): string {
  const { g, arch } = ctx;
  const { numHeads: heads, numKvHeads: kvHeads, headDim } = arch;
  const prefix = `layers.${a.layer}.attn`;

  const rope = (input: string, n: number, name: string): string => {
    const x = g.op('Reshape', [input, g.constInt64('heads_shape', [1, -1, n, headDim])], { name: `${name}.heads` });
    const [x1, x2] = g.node('Split', [x], { attrs: { axis: { int: -1 } }, outputs: 2, name: `${name}.split` });
    const c = shared.cosRows!;
    const s = shared.sinRows!;
    const y1 = g.op('Sub', [g.op('Mul', [x1, c]), g.op('Mul', [x2, s])], { name: `${name}.first_half` });
    const y2 = g.op('Add', [g.op('Mul', [x2, c]), g.op('Mul', [x1, s])], { name: `${name}.second_half` });
    return g.op('Concat', [y1, y2], { attrs: { axis: { int: -1 } }, name }); // [1, Q, n, D]
  };
  const perm = { perm: { ints: [0, 2, 1, 3] } };
  const query = g.op('Transpose', [rope(a.query, heads, `${prefix}.rope_q`)], { attrs: perm });
  const newKey = g.node('Transpose', [rope(a.key, kvHeads, `${prefix}.rope_k`)], {
    attrs: perm,
    outputs: [a.newKeyName],
    name: `${a.newKeyName}.transpose`,
  })[0];
  const newValue = toHeadsFirst(ctx, a.value, kvHeads, a.newValueName);
  return plainAttention(ctx, shared, a, prefix, query, newKey, newValue);
}

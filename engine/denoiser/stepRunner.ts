/**
 * Turns a step plan into one graph call: builds the StepFeeds (input ids and positions of the query rows, the
 * gathered context K/V, the attention bias, the indices of the predictor rows to read), runs the model, writes
 * the persisted rows' new K/V into the store, and returns the predictions keyed by candidate position. It also
 * counts graph calls and rows computed, and checks each plan's invariants (a wrong plan would silently give
 * wrong tokens).
 *
 * The attention bias is all zeros: the context is compacted to valid rows, so no column has to be hidden
 * (a block-causal policy would set HIDDEN_BIAS entries here).
 */
import type { KvArray, RowPredictions, StepModel } from '../graph/stepContract';
import type { StepPlan } from './cachePolicy';
import type { Canvas } from './canvas';
import type { KvStore } from './kvStore';
import { predictorRow } from './logitShift';

export interface CandidatePredictions {
  predictions: RowPredictions;
  /** For candidate i of the plan, its row in `predictions`. */
  rowOfCandidate: Int32Array;
}

export class StepRunner {
  graphCalls = 0;
  rowsComputed = 0;
  /** Milliseconds spent inside `model.run`. */
  graphMs = 0;
  readonly rowsPerCall: number[] = [];
  private readonly inputIds: BigInt64Array;
  private readonly positionIds: BigInt64Array;
  private readonly queryIndex: Int32Array;
  /** Zeros, sized for the largest bias [L, L]; each call takes a view of the size it needs. */
  private bias: KvArray | null = null;
  /** Per-layer empty past K/V for calls without context. */
  private readonly noContext: KvArray[];

  constructor(
    private readonly model: StepModel,
    private readonly canvas: Canvas,
    private readonly store: KvStore | null,
    private readonly logitShift: boolean,
    private readonly vocabSize: number,
  ) {
    this.inputIds = new BigInt64Array(canvas.length);
    this.positionIds = new BigInt64Array(canvas.length);
    this.queryIndex = new Int32Array(canvas.length).fill(-1);
    this.noContext = Array.from({ length: model.numLayers }, () =>
      model.cacheDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0),
    );
  }

  async run(plan: StepPlan): Promise<CandidatePredictions> {
    const { queryRows, contextRows, candidates, persist } = plan;
    const q = queryRows.length;
    const c = contextRows.length;
    this.checkPlan(plan);

    for (let i = 0; i < q; i++) {
      this.inputIds[i] = BigInt(this.canvas.token(queryRows[i]));
      this.positionIds[i] = BigInt(queryRows[i]);
      this.queryIndex[queryRows[i]] = i;
    }
    // One prediction row per distinct predictor row (a shifted model's row 0 predicts positions 0 and 1).
    const logitsIndex: bigint[] = [];
    const rowOfQueryIndex = new Map<number, number>();
    const rowOfCandidate = new Int32Array(candidates.length);
    for (let i = 0; i < candidates.length; i++) {
      const qi = this.queryIndex[predictorRow(candidates[i], this.logitShift)];
      let row = rowOfQueryIndex.get(qi);
      if (row === undefined) {
        row = logitsIndex.length;
        rowOfQueryIndex.set(qi, row);
        logitsIndex.push(BigInt(qi));
      }
      rowOfCandidate[i] = row;
    }

    const context = c > 0 ? this.store!.gather(contextRows) : null;
    const callStarted = performance.now();
    const result = await this.model.run({
      inputIds: this.inputIds.subarray(0, q),
      positionIds: this.positionIds.subarray(0, q),
      attentionBias: this.zeroBias(q * (c + q)),
      logitsIndex: BigInt64Array.from(logitsIndex),
      pastKeys: context?.keys ?? this.noContext,
      pastValues: context?.values ?? this.noContext,
      contextLength: c,
    });
    this.graphMs += performance.now() - callStarted;
    for (let i = 0; i < q; i++) this.queryIndex[queryRows[i]] = -1;

    const predictions = result.predictions;
    if (predictions.rows !== logitsIndex.length) {
      throw new Error(`the model returned ${predictions.rows} prediction rows for ${logitsIndex.length} requested`);
    }
    if (predictions.kind === 'logits' && predictions.vocabSize !== this.vocabSize) {
      throw new Error(`the model returned logits over ${predictions.vocabSize} tokens, expected ${this.vocabSize}`);
    }
    if (this.store && persist.some((flag) => flag === 1)) this.store.scatter(queryRows, persist, result.newKeys, result.newValues);

    this.graphCalls++;
    this.rowsComputed += q;
    this.rowsPerCall.push(q);
    return { predictions, rowOfCandidate };
  }

  private checkPlan({ queryRows, contextRows, candidates, persist }: StepPlan): void {
    const length = this.canvas.length;
    const seen = new Uint8Array(length);
    for (const row of queryRows) {
      if (row < 0 || row >= length || seen[row]) throw new Error(`query row ${row} is out of range or repeated`);
      seen[row] = 1;
    }
    for (const row of contextRows) {
      if (row < 0 || row >= length || seen[row]) throw new Error(`context row ${row} is out of range or also a query row`);
      seen[row] = 2;
    }
    if (contextRows.length > 0 && this.store === null) throw new Error('a plan with context rows needs a K/V store');
    if (persist.length !== queryRows.length) throw new Error(`persist has ${persist.length} flags for ${queryRows.length} query rows`);
    for (const p of candidates) {
      if (!this.canvas.isFill(p) || !this.canvas.isMasked(p)) throw new Error(`candidate ${p} is not a masked fill position`);
      if (seen[predictorRow(p, this.logitShift)] !== 1) {
        throw new Error(`candidate ${p} needs row ${predictorRow(p, this.logitShift)} among the query rows`);
      }
    }
  }

  private zeroBias(size: number): KvArray {
    if (this.bias === null) {
      const max = this.canvas.length * this.canvas.length;
      this.bias = this.model.cacheDtype === 'float16' ? new Uint16Array(max) : new Float32Array(max);
    }
    return this.bias.subarray(0, size);
  }
}

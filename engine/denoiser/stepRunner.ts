/**
 * Turns a step plan into one graph call: builds the StepFeeds (input ids and positions of the query rows, the
 * context K/V, the attention bias, the indices of the predictor rows to read), runs the model, writes the
 * persisted rows' new K/V into the store, and returns the predictions keyed by candidate position. It also
 * counts graph calls, rows computed and K/V bytes moved between host and graph, and checks each plan's
 * invariants (a wrong plan would silently give wrong tokens).
 *
 * Where the K/V live for a request:
 * - host (every model): the context is compacted to the plan's rows, so the attention bias is all zeros, and a
 *   call's new K/V are brought back only when the plan persists a row.
 * - device (a model with `deviceKv`, i.e. WebGPU, and a policy with a store): the canvas K/V stay in device
 *   memory, row r at index r, and are written on the device (`DeviceKvOps.merge`; a full pass in canvas order
 *   is adopted whole). A call with context attends to all L rows with C = L, and the bias hides every column
 *   not in the plan's context (query rows, rows not valid). Attention is order-free and a hidden column weighs
 *   exactly 0, so this is the host path's computation with the columns in another order; no K/V cross the
 *   host boundary at all.
 */
import { toFloat16Bits } from '../graph/float16';
import { HIDDEN_BIAS, type DeviceKv, type DeviceKvOps, type KvArray, type NewKvDestination, type RowPredictions, type StepModel } from '../graph/stepContract';
import type { StepPlan } from './cachePolicy';
import type { TokenCanvas } from './tokenCanvas';
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
  /** Milliseconds spent inside `model.run` (and device K/V writes). */
  graphMs = 0;
  /** K/V bytes passed from host memory into graph calls as context (on a GPU provider: host-to-device copies). */
  kvBytesUploaded = 0;
  /** New K/V bytes brought back from graph calls into host memory (on a GPU provider: device-to-host copies). */
  kvBytesDownloaded = 0;
  readonly rowsPerCall: number[] = [];
  readonly contextRowsPerCall: number[] = [];
  private readonly inputIds: BigInt64Array;
  private readonly positionIds: BigInt64Array;
  private readonly queryIndex: Int32Array;
  /** Per query index, its row among the predictions read (-1 between calls), and the reverse. */
  private readonly predictionRow: Int32Array;
  private readonly logitsIndex: BigInt64Array;
  /** Zeros, sized for the largest bias [L, L]; each call takes a view of the size it needs. */
  private bias: KvArray | null = null;
  /** Per-layer empty past K/V for calls without host context. */
  private readonly noContext: KvArray[];
  /** K/V bytes of one canvas row over all layers. */
  private readonly kvRowBytes: number;
  /** The device path's operations, or null on the host path. */
  private readonly device: DeviceKvOps | null;
  /** Device path: the canvas K/V (null until the first row is stored); row r is canvas row r. */
  private deviceStore: DeviceKv | null = null;
  /** Device path: the bias of calls with context, [Q, L+Q], grown as needed. */
  private deviceBias: KvArray | null = null;
  /** Device path: per canvas row, where a write takes it from (graph input `index` of the merge). */
  private mergeIndex: BigInt64Array | null = null;
  /** HIDDEN_BIAS in the bias array's element encoding. */
  private readonly hiddenBias: number;

  constructor(
    private readonly model: StepModel,
    private readonly canvas: TokenCanvas,
    private readonly store: KvStore | null,
    private readonly logitShift: boolean,
    private readonly vocabSize: number,
  ) {
    this.inputIds = new BigInt64Array(canvas.length);
    this.positionIds = new BigInt64Array(canvas.length);
    this.queryIndex = new Int32Array(canvas.length).fill(-1);
    this.predictionRow = new Int32Array(canvas.length).fill(-1);
    this.logitsIndex = new BigInt64Array(canvas.length);
    this.noContext = Array.from({ length: model.numLayers }, () =>
      model.cacheDtype === 'float16' ? new Uint16Array(0) : new Float32Array(0),
    );
    this.kvRowBytes = 2 * model.numLayers * model.numKvHeads * model.headDim * (model.cacheDtype === 'float16' ? 2 : 4);
    this.hiddenBias = model.cacheDtype === 'float16' ? toFloat16Bits(HIDDEN_BIAS.float16) : HIDDEN_BIAS.float32;
    this.device = model.deviceKv && store !== null ? model.deviceKv : null;
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
    let r = 0;
    const rowOfCandidate = new Int32Array(candidates.length);
    for (let i = 0; i < candidates.length; i++) {
      const qi = this.queryIndex[predictorRow(candidates[i], this.logitShift)];
      if (this.predictionRow[qi] === -1) {
        this.predictionRow[qi] = r;
        this.logitsIndex[r++] = BigInt(qi);
      }
      rowOfCandidate[i] = this.predictionRow[qi];
    }
    for (let i = 0; i < r; i++) this.predictionRow[Number(this.logitsIndex[i])] = -1;

    const persists = this.store !== null && persist.includes(1);
    const newKv: NewKvDestination = !persists ? 'none' : this.device ? 'device' : 'host';
    const onDevice = this.device !== null && c > 0;
    if (onDevice && this.deviceStore === null) throw new Error('a plan has context rows but no row was stored on the device');
    const context = c > 0 && !onDevice ? this.store!.gather(contextRows) : null;
    const contextLength = onDevice ? this.canvas.length : c;
    const callStarted = performance.now();
    const result = await this.model.run(
      {
        inputIds: this.inputIds.subarray(0, q),
        positionIds: this.positionIds.subarray(0, q),
        attentionBias: onDevice ? this.hidingBias(contextRows, q) : this.zeroBias(q * (c + q)),
        logitsIndex: this.logitsIndex.subarray(0, r),
        pastKeys: context?.keys ?? this.noContext,
        pastValues: context?.values ?? this.noContext,
        contextLength,
      },
      { newKv, ...(onDevice ? { devicePast: this.deviceStore! } : {}) },
    );
    this.graphMs += performance.now() - callStarted;
    if (context) this.kvBytesUploaded += c * this.kvRowBytes;
    for (let i = 0; i < q; i++) this.queryIndex[queryRows[i]] = -1;

    const predictions = result.predictions;
    if (predictions.rows !== r) {
      result.deviceNewKv?.dispose();
      throw new Error(`the model returned ${predictions.rows} prediction rows for ${r} requested`);
    }
    if (predictions.kind === 'logits' && predictions.vocabSize !== this.vocabSize) {
      result.deviceNewKv?.dispose();
      throw new Error(`the model returned logits over ${predictions.vocabSize} tokens, expected ${this.vocabSize}`);
    }
    // Counted from what came back: a wrapper that does not pass the options on returns every call's K/V.
    if (result.newKeys[0]?.length) this.kvBytesDownloaded += q * this.kvRowBytes;
    if (newKv === 'host') {
      this.store!.scatter(queryRows, persist, result.newKeys, result.newValues);
    } else if (newKv === 'device') {
      if (!result.deviceNewKv) throw new Error('the model kept no new K/V on the device');
      const writeStarted = performance.now();
      await this.storeOnDevice(queryRows, persist, result.deviceNewKv);
      this.graphMs += performance.now() - writeStarted;
    }

    this.graphCalls++;
    this.rowsComputed += q;
    this.rowsPerCall.push(q);
    this.contextRowsPerCall.push(contextLength);
    return { predictions, rowOfCandidate };
  }

  /** Releases the K/V held in device memory; call once the request is over (also when it failed). */
  release(): void {
    this.deviceStore?.dispose();
    this.deviceStore = null;
  }

  /**
   * Writes the persisted query rows of a call into the device store. A full pass in canvas order becomes the
   * store as it is when every row it does not persist is invalid (so no stored row is overwritten that the host
   * path would have kept); otherwise the store is rebuilt on the device, each row from the old store or from the
   * call's rows.
   */
  private async storeOnDevice(queryRows: Int32Array, persist: Uint8Array, fresh: DeviceKv): Promise<void> {
    const store = this.store!;
    const length = this.canvas.length;
    let whole = queryRows.length === length;
    for (let i = 0; whole && i < length; i++) whole = queryRows[i] === i && (persist[i] === 1 || !store.isValid(i));
    let next = fresh;
    if (!whole) {
      const base = this.deviceStore;
      const index = (this.mergeIndex ??= new BigInt64Array(length));
      // With no store yet nothing is valid outside this call's rows, so other rows may point anywhere.
      for (let r = 0; r < length; r++) index[r] = base ? BigInt(r) : 0n;
      const offset = base ? length : 0;
      for (let i = 0; i < queryRows.length; i++) {
        if (persist[i] === 1 || !base) index[queryRows[i]] = BigInt(offset + i);
      }
      try {
        next = await this.device!.merge(base, fresh, index);
      } finally {
        fresh.dispose();
      }
    }
    this.deviceStore?.dispose();
    this.deviceStore = next;
    store.markWritten(queryRows, persist);
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
    if (this.device) {
      // The host path's gather checks this; on the device an invalid row would be attended to silently.
      for (const row of contextRows) if (!this.store!.isValid(row)) throw new Error(`context row ${row} is not valid in the K/V store`);
    }
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

  /**
   * The [Q, L+Q] bias of a call against the whole device store: columns of the context rows and of the query
   * rows visible, every other stored row hidden. Every query row sees the same columns, so the first row is built
   * and copied.
   */
  private hidingBias(contextRows: Int32Array, q: number): KvArray {
    const length = this.canvas.length;
    const width = length + q;
    const size = q * width;
    if (this.deviceBias === null || this.deviceBias.length < size) {
      const capacity = Math.max(size, 2 * (this.deviceBias?.length ?? 0));
      this.deviceBias = this.model.cacheDtype === 'float16' ? new Uint16Array(capacity) : new Float32Array(capacity);
    }
    const bias = this.deviceBias.subarray(0, size);
    bias.fill(this.hiddenBias, 0, length);
    for (const row of contextRows) bias[row] = 0;
    bias.fill(0, length, width);
    for (let i = 1; i < q; i++) bias.copyWithin(i * width, 0, width);
    return bias;
  }
}

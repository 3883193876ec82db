import { strict as assert } from 'node:assert';
import { TokenCanvas, CanvasTooLongError, checkCanvasFits } from '../../engine/denoiser/tokenCanvas';
import {
  createSchedule,
  dreamTransferCounts,
  linspaceFloat32,
  numTransferTokens,
  selectCommits,
  stepsPerBlock,
  tileBlocks,
  type ScheduleOptions,
  type ScoredCandidate,
} from '../../engine/denoiser/schedule';

const MASK = 99;

/** Runs a count schedule to the end, committing the leftmost masks of each step's block; returns (block, count) per step. */
function drain(options: ScheduleOptions, prefix: number, fill: number, suffix: number) {
  const canvas = new TokenCanvas(Array(prefix).fill(1), fill, Array(suffix).fill(2), MASK);
  const schedule = createSchedule(options, canvas);
  const steps: { block: number; count: number }[] = [];
  for (let step = 0; ; step++) {
    const next = schedule.next(canvas);
    if (next === null) break;
    const masked = canvas.maskedIn(next.block.start, next.block.end);
    for (const p of masked.slice(0, next.count!)) canvas.commit(p, 5, 1, step);
    steps.push({ block: next.block.index, count: next.count! });
  }
  assert.equal(canvas.maskedCount, 0);
  return { steps, planned: schedule.plannedSteps };
}

describe('denoiser canvas', () => {
  it('lays out [prefix][MASK x n][suffix] and only lets masked fill positions change, once', () => {
    const canvas = new TokenCanvas([10, 11], 3, [12], MASK);
    assert.deepEqual(Array.from(canvas.allTokens()), [10, 11, MASK, MASK, MASK, 12]);
    assert.equal(canvas.fillStart, 2);
    assert.equal(canvas.fillEnd, 5);
    assert.throws(() => canvas.commit(1, 7, 1, 0), /not in the fill/);
    assert.throws(() => canvas.commit(5, 7, 1, 0), /not in the fill/);
    canvas.commit(3, 7, 0.5, 0);
    assert.throws(() => canvas.commit(3, 8, 1, 1), /already committed/);
    assert.deepEqual(Array.from(canvas.fillTokens()), [MASK, 7, MASK]);
    const confidence = canvas.fillConfidences();
    assert.ok(Number.isNaN(confidence[0]) && confidence[1] === 0.5 && Number.isNaN(confidence[2]));
    assert.equal(canvas.maskedCount, 2);
    assert.equal(canvas.committedAt(3), 0);
    assert.equal(canvas.committedAt(0), -1);
    assert.equal(canvas.committedAt(2), undefined);
    assert.ok(canvas.wasFinalBefore(0, 0) && !canvas.wasFinalBefore(3, 0) && canvas.wasFinalBefore(3, 1));
  });

  it('treats a mask id inside the prefix as an ordinary token', () => {
    const canvas = new TokenCanvas([MASK], 1, [], MASK);
    assert.equal(canvas.isMasked(0), false);
    assert.equal(canvas.maskedCount, 1);
  });

  it('refuses canvases over the model positions with the numbers', () => {
    assert.doesNotThrow(() => checkCanvasFits(10, 20, 2, 32));
    assert.throws(() => checkCanvasFits(10, 21, 2, 32), (e: Error) =>
      e instanceof CanvasTooLongError && /33 tokens \(prefix 10 \+ fill 21 \+ suffix 2\).*at most 32/.test(e.message));
  });
});

describe('denoiser schedules', () => {
  it("numTransferTokens is LLaDA's get_num_transfer_tokens", () => {
    assert.deepEqual(numTransferTokens(32, 8), [4, 4, 4, 4, 4, 4, 4, 4]);
    assert.deepEqual(numTransferTokens(10, 4), [3, 3, 2, 2]);
    assert.deepEqual(numTransferTokens(7, 3), [3, 2, 2]);
    assert.deepEqual(numTransferTokens(3, 3), [1, 1, 1]);
  });

  it('linspace matches torch.linspace in float32', () => {
    // Expected values from numpy float32 arithmetic following torch's CPU kernel.
    assert.deepEqual(linspaceFloat32(1, 1e-3, 2), [1, 0.0010000000474974513]);
    assert.deepEqual(linspaceFloat32(1, 1e-3, 9), [
      1.0, 0.875124990940094, 0.750249981880188, 0.6253750324249268, 0.5005000233650208, 0.37562498450279236,
      0.25075000524520874, 0.12587499618530273, 0.0010000000474974513,
    ]);
    assert.deepEqual(linspaceFloat32(1, 1e-3, 6), [
      1.0, 0.8001999855041504, 0.6003999710083008, 0.40059998631477356, 0.20080000162124634, 0.0010000000474974513,
    ]);
  });

  it("dreamTransferCounts is Dream's int(n_mask * (1 - s/t)) with the last step taking all", () => {
    // Expected values from an independent numpy float32 transcription of Dream's loop.
    assert.deepEqual(dreamTransferCounts(8, 8), [0, 1, 1, 1, 1, 1, 1, 2]);
    assert.deepEqual(dreamTransferCounts(10, 4), [2, 2, 2, 4]);
    assert.deepEqual(dreamTransferCounts(7, 3), [2, 2, 3]);
    assert.deepEqual(dreamTransferCounts(64, 16), [3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5]);
    assert.deepEqual(dreamTransferCounts(5, 1), [5]);
    const long = dreamTransferCounts(32, 32);
    assert.deepEqual(long, [0, ...Array(30).fill(1), 2]);
  });

  it('tiles the fill into blocks (the last may be shorter) and splits the steps over them', () => {
    assert.deepEqual(tileBlocks(4, 10, 4), [
      { index: 0, start: 4, end: 8 },
      { index: 1, start: 8, end: 12 },
      { index: 2, start: 12, end: 14 },
    ]);
    assert.deepEqual(tileBlocks(0, 5, 100), [{ index: 0, start: 0, end: 5 }]);
    const blocks = tileBlocks(0, 10, 4);
    assert.deepEqual(stepsPerBlock(blocks, 10), [4, 3, 2]); // 10 over 3 blocks = 4,3,3; the last block has 2 positions
    assert.deepEqual(stepsPerBlock(blocks, 100), [4, 3, 2]); // steps lowered to the fill length first
    assert.throws(() => stepsPerBlock(blocks, 2), /at least the number of blocks/);
  });

  it('blocks: each block in turn with get_num_transfer_tokens over its share of the steps', () => {
    const even = drain({ schedule: 'blocks', steps: 6, blockLength: 8 }, 3, 16, 2);
    assert.deepEqual(even.steps.map((s) => s.count), [...numTransferTokens(8, 3), ...numTransferTokens(8, 3)]);
    assert.deepEqual(even.steps.map((s) => s.block), [0, 0, 0, 1, 1, 1]);
    assert.equal(even.planned, 6);
    // 20 masks in blocks of 8, 8, 4 with 7 steps: 3, 2, 2 steps.
    const ragged = drain({ schedule: 'blocks', steps: 7, blockLength: 8 }, 0, 20, 0);
    assert.deepEqual(ragged.steps.map((s) => s.count), [...numTransferTokens(8, 3), ...numTransferTokens(8, 2), ...numTransferTokens(4, 2)]);
  });

  it('blocks with steps == length commit exactly one token per step, block by block', () => {
    const { steps } = drain({ schedule: 'blocks', steps: 12, blockLength: 4 }, 0, 12, 0);
    assert.deepEqual(steps.map((s) => s.count), Array(12).fill(1));
    assert.deepEqual(steps.map((s) => s.block), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  });

  it('timesteps: Dream counts per block, zero-count steps dropped', () => {
    const whole = drain({ schedule: 'timesteps', steps: 8, blockLength: 64 }, 2, 8, 0);
    assert.deepEqual(whole.steps.map((s) => s.count), dreamTransferCounts(8, 8).filter((k) => k > 0));
    assert.equal(whole.planned, 7);
    const blocked = drain({ schedule: 'timesteps', steps: 8, blockLength: 10 }, 0, 20, 3);
    assert.deepEqual(blocked.steps.map((s) => s.count), [...dreamTransferCounts(10, 4), ...dreamTransferCounts(10, 4)]);
    assert.deepEqual(blocked.steps.map((s) => s.block), [0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it('threshold: the current block is the first with a mask, and no count is fixed', () => {
    const canvas = new TokenCanvas([1], 6, [], MASK);
    const schedule = createSchedule({ schedule: 'threshold', steps: 100, blockLength: 3 }, canvas);
    assert.equal(schedule.plannedSteps, 6);
    let next = schedule.next(canvas)!;
    assert.deepEqual(next, { block: { index: 0, start: 1, end: 4 }, count: null });
    for (const p of [1, 2, 3]) canvas.commit(p, 5, 1, 0);
    next = schedule.next(canvas)!;
    assert.equal(next.block.index, 1);
    for (const p of [4, 5, 6]) canvas.commit(p, 5, 1, 1);
    assert.equal(schedule.next(canvas), null);
  });

  it('selectCommits: top count by score (ties to the left), or every candidate over the threshold and at least one', () => {
    const c = (position: number, score: number, probability = score): ScoredCandidate => ({ position, token: 0, probability, score });
    const candidates = [c(5, 0.2), c(3, 0.9), c(7, 0.9), c(9, 0.5)];
    assert.deepEqual(selectCommits(candidates, 2, 1).map((x) => x.position), [3, 7]);
    assert.deepEqual(selectCommits(candidates, null, 0.5).map((x) => x.position), [3, 7, 9]);
    assert.deepEqual(selectCommits(candidates, null, 0.95).map((x) => x.position), [3]);
    // The threshold compares probabilities; the at-least-one fallback ranks by score.
    assert.deepEqual(selectCommits([c(1, -3, 0.2), c(2, -1, 0.1)], null, 0.9).map((x) => x.position), [2]);
    assert.throws(() => selectCommits(candidates, 5, 1), /commit 5 of 4/);
  });
});

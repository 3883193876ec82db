import assert from 'node:assert/strict';
import { JobCancelledError, Scheduler, type JobContext } from '../../engine/service/scheduler';

/** A job body that runs until released or cancelled, recording the order things happened in. */
function controllable(log: string[], name: string) {
  let release!: (value: string) => void;
  const work = (job: JobContext) =>
    new Promise<string>((resolve, reject) => {
      log.push(`start ${name}`);
      release = (value) => resolve(value);
      job.onCancel((reason) => reject(new JobCancelledError(reason, 3, 10)));
    });
  return { work, release: (value: string) => release(value) };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('server scheduler', () => {
  it('runs one job at a time per lane, in order, and lanes side by side', async () => {
    const log: string[] = [];
    const scheduler = new Scheduler();
    const a = controllable(log, 'a');
    const b = controllable(log, 'b');
    const c = controllable(log, 'c');
    const ja = scheduler.schedule('m1', undefined, a.work);
    const jb = scheduler.schedule('m1', undefined, b.work);
    const jc = scheduler.schedule('m2', undefined, c.work);
    await settle();
    assert.deepEqual(log, ['start a', 'start c']);
    assert.equal(scheduler.busy, 3);
    a.release('A');
    assert.equal(await ja.result, 'A');
    await settle();
    assert.deepEqual(log, ['start a', 'start c', 'start b']);
    b.release('B');
    c.release('C');
    assert.deepEqual(await Promise.all([jb.result, jc.result]), ['B', 'C']);
    await settle();
    assert.equal(scheduler.busy, 0);
  });

  it('supersedes the running job of the same document; the newer one runs next', async () => {
    const log: string[] = [];
    const scheduler = new Scheduler();
    const first = controllable(log, 'first');
    const second = controllable(log, 'second');
    const j1 = scheduler.schedule('m', 'doc', first.work);
    await settle();
    const j2 = scheduler.schedule('m', 'doc', second.work);
    await assert.rejects(j1.result, (e: JobCancelledError) => e.reason === 'superseded' && e.stepsDone === 3);
    await settle();
    assert.deepEqual(log, ['start first', 'start second']);
    second.release('done');
    assert.equal(await j2.result, 'done');
  });

  it('drops a superseded queued job without running it, and other documents are untouched', async () => {
    const log: string[] = [];
    const scheduler = new Scheduler();
    const blocker = controllable(log, 'blocker');
    const queued = controllable(log, 'queued');
    const newer = controllable(log, 'newer');
    const jBlocker = scheduler.schedule('m', 'other', blocker.work);
    const jQueued = scheduler.schedule('m', 'doc', queued.work);
    const jNewer = scheduler.schedule('m', 'doc', newer.work);
    await assert.rejects(jQueued.result, (e: JobCancelledError) => e.reason === 'superseded' && e.stepsDone === 0);
    assert.equal(scheduler.busy, 2);
    blocker.release('x');
    assert.equal(await jBlocker.result, 'x');
    await settle();
    newer.release('y');
    assert.equal(await jNewer.result, 'y');
    assert.deepEqual(log, ['start blocker', 'start newer']);
  });

  it('cancels a lane, or every lane, with the given reason', async () => {
    const log: string[] = [];
    const scheduler = new Scheduler();
    const running = controllable(log, 'running');
    const waiting = controllable(log, 'waiting');
    const j1 = scheduler.schedule('m', undefined, running.work);
    const j2 = scheduler.schedule('m', undefined, waiting.work);
    const other = controllable(log, 'other lane');
    const j3 = scheduler.schedule('m2', undefined, other.work);
    await settle();
    await scheduler.cancelAll('unloaded', 'm');
    await assert.rejects(j1.result, (e: JobCancelledError) => e.reason === 'unloaded');
    await assert.rejects(j2.result, (e: JobCancelledError) => e.reason === 'unloaded');
    assert.equal(scheduler.busy, 1);
    await scheduler.cancelAll('shutdown');
    await assert.rejects(j3.result, (e: JobCancelledError) => e.reason === 'shutdown');
    assert.equal(scheduler.busy, 0);
    assert.deepEqual(log, ['start running', 'start other lane']);
  });

  it('runs a background job only when its lane is idle; any other job preempts it and runs as soon as it stops', async () => {
    const log: string[] = [];
    const scheduler = new Scheduler();
    const request = controllable(log, 'request');
    const warm = controllable(log, 'warm-up');
    const next = controllable(log, 'next request');
    const jRequest = scheduler.schedule('m', 'a.ts', request.work);
    const jQueuedWarm = scheduler.schedule('m', 'b.ts', warm.work, { background: true });
    assert.equal(scheduler.busy, 1, 'a warm-up is not a request');
    await settle();
    request.release('r');
    assert.equal(await jRequest.result, 'r');
    await settle();
    assert.deepEqual(log, ['start request', 'start warm-up'], 'the warm-up waited for the request');
    // A request of another document preempts the running warm-up; it starts once the warm-up has stopped.
    const jNext = scheduler.schedule('m', 'c.ts', next.work);
    await assert.rejects(jQueuedWarm.result, (e: JobCancelledError) => e.reason === 'preempted');
    await settle();
    assert.deepEqual(log, ['start request', 'start warm-up', 'start next request']);
    // A queued warm-up is dropped by a request, without running.
    const later = controllable(log, 'later warm-up');
    const jLater = scheduler.schedule('m', 'c.ts', later.work, { background: true });
    const last = controllable(log, 'last request');
    const jLast = scheduler.schedule('m', 'd.ts', last.work);
    await assert.rejects(jLater.result, (e: JobCancelledError) => e.reason === 'preempted' && e.stepsPlanned === undefined);
    next.release('n');
    assert.equal(await jNext.result, 'n', 'a warm-up never supersedes a request of its own document');
    await settle();
    last.release('l');
    assert.equal(await jLast.result, 'l');
    assert.deepEqual(log, ['start request', 'start warm-up', 'start next request', 'start last request']);
  });

  it('a newer background job replaces the older ones of its lane; other lanes keep theirs', async () => {
    const log: string[] = [];
    const scheduler = new Scheduler();
    const first = controllable(log, 'first');
    const second = controllable(log, 'second');
    const elsewhere = controllable(log, 'elsewhere');
    const j1 = scheduler.schedule('m', 'a.ts', first.work, { background: true });
    const j3 = scheduler.schedule('m2', 'a.ts', elsewhere.work, { background: true });
    await settle();
    const j2 = scheduler.schedule('m', 'b.ts', second.work, { background: true });
    await assert.rejects(j1.result, (e: JobCancelledError) => e.reason === 'superseded');
    await settle();
    second.release('2');
    elsewhere.release('e');
    assert.deepEqual(await Promise.all([j2.result, j3.result]), ['2', 'e']);
    assert.deepEqual(log, ['start first', 'start elsewhere', 'start second']);
  });

  it('ignores a cancel after the job settled', async () => {
    const scheduler = new Scheduler();
    const job = scheduler.schedule('m', 'doc', async () => 42);
    assert.equal(await job.result, 42);
    job.cancel('cancelled');
    assert.equal(await job.result, 42);
  });
});

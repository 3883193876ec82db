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

  it('ignores a cancel after the job settled', async () => {
    const scheduler = new Scheduler();
    const job = scheduler.schedule('m', 'doc', async () => 42);
    assert.equal(await job.result, 42);
    job.cancel('cancelled');
    assert.equal(await job.result, 42);
  });
});

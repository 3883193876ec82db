/**
 * Who runs when: one job at a time per lane (a loaded model), first come first served, and the newest job
 * of a document wins: scheduling a job for a document cancels that document's queued or running job.
 * A queued job is dropped at once; a running one is asked to stop (its work sees the cancel listener fire
 * and ends at the next step boundary).
 *
 * Background jobs (prompt warm-ups) run only when nothing else of their lane is queued or running: any other
 * job scheduled on the lane preempts them (queued ones are dropped, a running one is asked to stop), and a
 * newer background job of the lane replaces the older ones.
 */

export type CancelReason = 'cancelled' | 'superseded' | 'preempted' | 'unloaded' | 'shutdown';

export class JobCancelledError extends Error {
  override name = 'JobCancelledError';
  constructor(
    readonly reason: CancelReason,
    /** Denoising steps completed before the job stopped (0 when it never ran). */
    readonly stepsDone: number,
    /** Steps planned, when the job had started. */
    readonly stepsPlanned?: number,
  ) {
    super(
      stepsPlanned === undefined
        ? `${reason} before it started`
        : `${reason} after step ${stepsDone} of ${stepsPlanned}`,
    );
  }
}

/** What a job's work sees of its own cancellation. */
export interface JobContext {
  readonly id: number;
  /** Why the job was cancelled, once it has been. */
  readonly cancelReason: CancelReason | undefined;
  /** Called once, when the job is cancelled while running. */
  onCancel(listener: (reason: CancelReason) => void): void;
}

export interface ScheduleOptions {
  /** Run at the lowest priority, preempted by any other job of the lane. */
  background?: boolean;
  /** The id reserved for the job (`reserveId`), else a new one. */
  id?: number;
}

export interface ScheduledJob<T> {
  readonly id: number;
  readonly result: Promise<T>;
  cancel(reason: CancelReason): void;
}

type JobState = 'queued' | 'running' | 'settled';

class Job<T> implements JobContext, ScheduledJob<T> {
  state: JobState = 'queued';
  cancelReason: CancelReason | undefined;
  readonly result: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  private cancelListener: ((reason: CancelReason) => void) | undefined;

  constructor(
    readonly id: number,
    readonly lane: string,
    readonly documentId: string | undefined,
    readonly background: boolean,
    readonly work: (job: JobContext) => Promise<T>,
    private readonly dequeue: (job: Job<T>) => void,
  ) {
    this.result = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  onCancel(listener: (reason: CancelReason) => void): void {
    this.cancelListener = listener;
    if (this.cancelReason) listener(this.cancelReason);
  }

  cancel(reason: CancelReason): void {
    if (this.state === 'settled' || this.cancelReason) return;
    this.cancelReason = reason;
    if (this.state === 'queued') {
      this.dequeue(this);
      this.settle(() => this.reject(new JobCancelledError(reason, 0)));
    } else {
      this.cancelListener?.(reason);
    }
  }

  settle(action: () => void): void {
    if (this.state === 'settled') return;
    this.state = 'settled';
    action();
  }
}

export class Scheduler {
  private nextId = 1;
  private readonly lanes = new Map<string, { queue: Job<unknown>[]; running: Job<unknown> | undefined }>();
  private readonly byDocument = new Map<string, Job<unknown>>();

  /** An id for a job scheduled later (e.g. once its text is tokenized), so that it is known from the start. */
  reserveId(): number {
    return this.nextId++;
  }

  /**
   * Queues `work` on `lane` (as job `options.id` when one was reserved); a job of the same document still queued
   * or running is superseded. A background job replaces the lane's other background jobs; any other job preempts
   * them.
   */
  schedule<T>(lane: string, documentId: string | undefined, work: (job: JobContext) => Promise<T>, options: ScheduleOptions = {}): ScheduledJob<T> {
    const background = options.background === true;
    const job = new Job<T>(options.id ?? this.reserveId(), lane, documentId, background, work, (j) => this.remove(j as Job<unknown>));
    const { queue, running } = this.lane(lane);
    for (const other of [...queue, ...(running ? [running] : [])]) {
      if (other.background) other.cancel(background ? 'superseded' : 'preempted');
    }
    if (documentId !== undefined && !background) {
      this.byDocument.get(documentId)?.cancel('superseded');
      this.byDocument.set(documentId, job as Job<unknown>);
    }
    queue.push(job as Job<unknown>);
    this.pump(lane);
    return job;
  }

  /** Jobs running or queued, background ones not counted. */
  get busy(): number {
    let n = 0;
    for (const lane of this.lanes.values()) {
      n += lane.queue.filter((job) => !job.background).length + (lane.running && !lane.running.background ? 1 : 0);
    }
    return n;
  }

  /** Cancels the jobs of one lane (every lane when none is named) and resolves once they have stopped. */
  async cancelAll(reason: CancelReason, laneName?: string): Promise<void> {
    const lanes = laneName === undefined ? [...this.lanes.values()] : [this.lane(laneName)];
    const jobs = lanes.flatMap((lane) => [...lane.queue, ...(lane.running ? [lane.running] : [])]);
    for (const job of jobs) job.cancel(reason);
    await Promise.allSettled(jobs.map((job) => job.result));
  }

  private lane(name: string) {
    let lane = this.lanes.get(name);
    if (!lane) this.lanes.set(name, (lane = { queue: [], running: undefined }));
    return lane;
  }

  private remove(job: Job<unknown>): void {
    const lane = this.lane(job.lane);
    const at = lane.queue.indexOf(job);
    if (at >= 0) lane.queue.splice(at, 1);
    this.forget(job);
  }

  private forget(job: Job<unknown>): void {
    if (job.documentId !== undefined && this.byDocument.get(job.documentId) === job) {
      this.byDocument.delete(job.documentId);
    }
  }

  private pump(laneName: string): void {
    const lane = this.lane(laneName);
    if (lane.running) return;
    const job = lane.queue.shift();
    if (!job) return;
    lane.running = job;
    job.state = 'running';
    job
      .work(job)
      .then(
        (value) => job.settle(() => job.resolve(value)),
        (error) => job.settle(() => job.reject(error)),
      )
      .finally(() => {
        lane.running = undefined;
        this.forget(job);
        this.pump(laneName);
      });
  }
}

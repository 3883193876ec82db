/**
 * Long work that several callers may ask for at once, done once: the model picker preparing a model while a
 * settings change loads the same one must not run two downloads into the same files. Every caller gets the
 * work's progress and result, and may withdraw (its own promise rejects with WorkWithdrawn); the work itself
 * is aborted once no caller is left. A caller arriving after that waits for the aborted run to stop before a
 * fresh one starts, so two runs never overlap on the same key.
 */
export class WorkWithdrawn extends Error {
  override name = 'WorkWithdrawn';
  constructor() {
    super('cancelled');
  }
}

interface Run<T, P> {
  controller: AbortController;
  listeners: Set<(progress: P) => void>;
  callers: number;
  /** Settles when the work has stopped, whatever the outcome. */
  done: Promise<T>;
}

export interface Caller<P> {
  signal?: AbortSignal;
  onProgress?: (progress: P) => void;
}

export class SharedWork<T, P> {
  private readonly runs = new Map<string, Run<T, P>>();

  /** The keys of work running now. */
  keys(): string[] {
    return [...this.runs.keys()];
  }

  run(key: string, work: (signal: AbortSignal, progress: (p: P) => void) => Promise<T>, caller: Caller<P> = {}): Promise<T> {
    let run = this.runs.get(key);
    if (!run || run.controller.signal.aborted) run = this.start(key, work, run);
    const joined = run;
    joined.callers++;
    if (caller.onProgress) joined.listeners.add(caller.onProgress);
    return new Promise<T>((resolve, reject) => {
      const leave = () => {
        joined.callers--;
        if (caller.onProgress) joined.listeners.delete(caller.onProgress);
        caller.signal?.removeEventListener('abort', withdraw);
      };
      const withdraw = () => {
        leave();
        if (joined.callers === 0) joined.controller.abort();
        reject(new WorkWithdrawn());
      };
      if (caller.signal?.aborted) return withdraw();
      caller.signal?.addEventListener('abort', withdraw, { once: true });
      joined.done.then(
        (value) => {
          leave();
          resolve(value);
        },
        (error: unknown) => {
          leave();
          reject(error);
        },
      );
    });
  }

  private start(key: string, work: (signal: AbortSignal, progress: (p: P) => void) => Promise<T>, stopping?: Run<T, P>): Run<T, P> {
    const controller = new AbortController();
    const listeners = new Set<(progress: P) => void>();
    const begin = () => work(controller.signal, (progress) => listeners.forEach((listener) => listener(progress)));
    const run: Run<T, P> = {
      controller,
      listeners,
      callers: 0,
      // Started at once (so it sees a withdrawal as an abort), unless a stopped run must end first.
      done: stopping ? stopping.done.then(noop, noop).then(begin) : startNow(begin),
    };
    this.runs.set(key, run);
    const forget = () => {
      if (this.runs.get(key) === run) this.runs.delete(key);
    };
    run.done.then(forget, forget);
    return run;
  }
}

const noop = () => undefined;

function startNow<T>(begin: () => Promise<T>): Promise<T> {
  try {
    return begin();
  } catch (error) {
    return Promise.reject(error);
  }
}

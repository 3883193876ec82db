/**
 * Thrown by the denoiser between steps when its caller asked it to stop; the model worker passes it on to the
 * main thread as it is, where the scheduler adds why the job was stopped.
 */
export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor(
    readonly stepsDone: number,
    /** Steps planned when it stopped (an estimate for the threshold schedule). */
    readonly totalSteps: number,
  ) {
    super(`stopped after step ${stepsDone} of ${totalSteps}`);
  }
}

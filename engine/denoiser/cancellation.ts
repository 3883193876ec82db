/** Thrown by the denoiser between steps when its caller asked it to stop. */
export class CancelledError extends Error {
  constructor(message = 'denoising was cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

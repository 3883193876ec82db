/**
 * Failures of model preparation and GPU set-up as protocol errors: the message says what happened and what to
 * do, and `data` (protocol.ts SetupErrorData) says why in a form the editor can act on: offer a token for a
 * gated model, show how much disk or memory is missing, name the URL that failed.
 */
import { NotEnoughDiskSpace } from '../machine/diskSpace';
import { DownloadError, type DownloadFailure } from '../store/fileDownload';
import { HubError } from '../store/huggingFaceHub';
import { ErrorCodes, type SetupErrorData } from '../../common/protocol';
import { EngineError } from './errors';
import { WorkWithdrawn } from './sharedWork';

const REASONS: Record<DownloadFailure | 'invalid', SetupErrorData['reason']> = {
  denied: 'gated',
  missing: 'notFound',
  unreachable: 'unreachable',
  interrupted: 'interrupted',
  corrupt: 'corrupt',
  busy: 'busy',
  cancelled: 'other',
  http: 'other',
  invalid: 'other',
};

/** The protocol error for a failed preparation; `cancelled` when the caller withdrew. */
export function setupError(error: unknown, what: string): EngineError {
  if (error instanceof WorkWithdrawn || (error instanceof DownloadError && error.reason === 'cancelled') || (error instanceof HubError && error.reason === 'cancelled')) {
    return new EngineError(ErrorCodes.RequestCancelled, `${what} was cancelled; what was downloaded is kept, and the next attempt resumes it.`);
  }
  if (error instanceof EngineError) return error;
  const message = (error as Error).message ?? String(error);
  if (error instanceof NotEnoughDiskSpace) {
    const data: SetupErrorData = { reason: 'noDiskSpace', dir: error.dir, neededBytes: error.neededBytes, availableBytes: error.freeBytes };
    return new EngineError(ErrorCodes.ModelLoadFailed, message, data);
  }
  if (error instanceof HubError || error instanceof DownloadError) {
    const data: SetupErrorData = { reason: REASONS[error.reason], ...(error.url ? { url: error.url } : {}) };
    return new EngineError(ErrorCodes.ModelLoadFailed, message, data);
  }
  return new EngineError(ErrorCodes.ModelLoadFailed, message, { reason: 'other' } satisfies SetupErrorData);
}

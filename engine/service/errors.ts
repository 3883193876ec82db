/**
 * Errors the engine reports to its callers with a protocol error code (common/protocol.ts `ErrorCodes`),
 * so the JSON-RPC server and the CLI can tell a bad request from a failure.
 */
import { ErrorCodes } from '../../common/protocol';

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class EngineError extends Error {
  override name = 'EngineError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Structured detail for the client (e.g. the token counts of a canvas that is too long). */
    readonly data?: unknown,
  ) {
    super(message);
  }
}

export function invalidParams(message: string): EngineError {
  return new EngineError(ErrorCodes.InvalidParams, message);
}

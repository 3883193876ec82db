/**
 * Checks the shape of every request's params as they arrive over JSON-RPC (types, known fields, enum
 * values, lengths), so a malformed request is answered with InvalidParams saying which field is wrong.
 * Of the decoding options only the field names are checked here: the engine resolves the values against the
 * model's defaults and checks them once, for the CLI and the server alike (engine/denoiser/options.ts), before
 * anything is queued; so do ranges that depend on the model (length vs the canvas).
 */
import { DEVICE_OPTIONS, PROMPT_REUSE_MODES, type DeviceOption, type InfillParams, type LoadModelParams, type WarmPromptParams } from '../../common/protocol';
import { DECODING_OPTION_NAMES, isDecodingOptionName, type DecodingOptions } from '../../common/decodingOptions';
import { invalidParams } from '../service/errors';

/** Prefix and suffix beyond this many characters are refused before tokenizing (no model has such a canvas). */
export const MAX_TEXT_CHARS = 4_000_000;

type FieldKind = 'string' | 'number' | 'integer' | 'boolean' | readonly string[];

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}...` : value}"`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function checkField(where: string, value: unknown, kind: FieldKind): void {
  const ok =
    kind === 'string'
      ? typeof value === 'string'
      : kind === 'number'
        ? typeof value === 'number' && Number.isFinite(value)
        : kind === 'integer'
          ? Number.isSafeInteger(value)
          : kind === 'boolean'
            ? typeof value === 'boolean'
            : typeof value === 'string' && kind.includes(value);
  if (!ok) {
    const expected = typeof kind === 'string' ? (kind === 'integer' ? 'a whole number' : `a ${kind}`) : `one of ${kind.join(', ')}`;
    throw invalidParams(`${where} must be ${expected}; got ${describe(value)}.`);
  }
}

function record(where: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidParams(`${where} must be an object; got ${describe(value)}.`);
  }
  return value as Record<string, unknown>;
}

/** Checks `value` against a field table; required fields must be present, others are refused. */
function checkObject(
  where: string,
  value: unknown,
  required: Record<string, FieldKind>,
  optional: Record<string, FieldKind>,
): Record<string, unknown> {
  const object = record(where, value);
  for (const key of Object.keys(object)) {
    // Own fields only: `key in table` would accept "constructor" or "__proto__" from Object.prototype.
    if (!Object.hasOwn(required, key) && !Object.hasOwn(optional, key)) {
      const known = [...Object.keys(required), ...Object.keys(optional)].join(', ');
      throw invalidParams(`${where} has an unknown field "${key}" (known: ${known}).`);
    }
  }
  for (const [key, kind] of Object.entries(required)) {
    if (object[key] === undefined) throw invalidParams(`${where}.${key} is missing.`);
    checkField(`${where}.${key}`, object[key], kind);
  }
  for (const [key, kind] of Object.entries(optional)) {
    if (object[key] !== undefined) checkField(`${where}.${key}`, object[key], kind);
  }
  return object;
}

export function validateLoadModelParams(value: unknown): LoadModelParams {
  const params = checkObject(
    'params',
    value,
    { model: 'string', device: DEVICE_OPTIONS },
    { progressToken: 'string', huggingFaceToken: 'string', hubUrl: 'string' },
  );
  if (params.hubUrl !== undefined && !/^https?:\/\/\S+$/.test(params.hubUrl as string)) {
    throw invalidParams(`params.hubUrl must be an http(s) URL; got ${describe(params.hubUrl)}.`);
  }
  return params as unknown as LoadModelParams;
}

/** dlm/prepareModel takes what dlm/loadModel takes. */
export const validatePrepareModelParams = validateLoadModelParams;

export function validateModelCatalogueParams(value: unknown): { device: DeviceOption } {
  return checkObject('params', value, { device: DEVICE_OPTIONS }, {}) as { device: DeviceOption };
}

export function validatePathParams(value: unknown): { path: string } {
  return checkObject('params', value, { path: 'string' }, {}) as { path: string };
}

export function validateGpuProviderParams(value: unknown): { dir: string; progressToken?: string } {
  return checkObject('params', value, { dir: 'string' }, { progressToken: 'string' }) as { dir: string; progressToken?: string };
}

export function validateInfillParams(value: unknown): InfillParams {
  return checkCanvasParams(value, { documentId: 'string', progressToken: 'string', reusePrefix: 'boolean' }) as InfillParams;
}

export function validateWarmPromptParams(value: unknown): WarmPromptParams {
  return checkCanvasParams(value, {}, { documentId: 'string' }) as WarmPromptParams;
}

/** The fields of a request that carries a canvas (infill, warm-up), with its own `optional` and `required` ones. */
function checkCanvasParams(value: unknown, optional: Record<string, FieldKind>, required: Record<string, FieldKind> = {}): InfillParams | WarmPromptParams {
  const object = record('params', value);
  const { options, ...rest } = object;
  const params = checkObject(
    'params',
    rest,
    { modelId: 'string', prefix: 'string', suffix: 'string', length: 'integer', ...required },
    { fitToModel: 'boolean', coldBudgetMs: 'number', reuseMode: PROMPT_REUSE_MODES, ...optional },
  );
  if ((params.length as number) < 1) throw invalidParams(`params.length must be at least 1; got ${params.length}.`);
  if ((params.coldBudgetMs as number) < 0) throw invalidParams(`params.coldBudgetMs must be 0 or more; got ${params.coldBudgetMs}.`);
  for (const key of ['prefix', 'suffix'] as const) {
    const text = params[key] as string;
    if (text.length > MAX_TEXT_CHARS) {
      throw invalidParams(`params.${key} has ${text.length} characters; at most ${MAX_TEXT_CHARS} are accepted.`);
    }
  }
  if (options !== undefined) {
    // Field names are shape; their values are the engine's one check of the options.
    const unknown = Object.keys(record('params.options', options)).find((key) => !isDecodingOptionName(key));
    if (unknown !== undefined) {
      throw invalidParams(`params.options has an unknown field "${unknown}" (known: ${DECODING_OPTION_NAMES.join(', ')}).`);
    }
  }
  return { ...(params as unknown as InfillParams), ...(options === undefined ? {} : { options: options as Partial<DecodingOptions> }) };
}

export function validateUnloadModelParams(value: unknown): { modelId: string } {
  return checkObject('params', value, { modelId: 'string' }, {}) as { modelId: string };
}

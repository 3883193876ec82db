/**
 * The `dlm.*` settings: read, validated, and turned into what the rest of the extension uses.
 * A bad value never stops the extension: it is reported with a clear message and replaced by a safe
 * fallback (the model's own default for decoding options, the manifest default for everything else).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  ALGORITHMS,
  CACHE_MODES,
  DEVICE_OPTIONS,
  GREEDY_ORDERS,
  PROMPT_REUSE_MODES,
  SCHEDULES,
  type DecodingOptions,
  type DeviceOption,
  type PromptReuseMode,
} from '../engine/protocol';

export const SECTION = 'dlm';

export interface DlmSettings {
  /** `builtin`, an absolute model folder path, or a Hugging Face id (passed through as it is). */
  model: string;
  device: DeviceOption;
  /** Only the decoding options the user set; everything else is the model's own default. */
  decoding: Partial<DecodingOptions>;
  /** Masks at the cursor when the completion may span several lines. */
  fillLength: number;
  /** Masks at the cursor in the middle of a line (the completion ends at the line's end). */
  lineFillLength: number;
  /** Budget of the code around the cursor sent as context, in UTF-8 bytes (prefix and suffix together). */
  contextBytes: number;
  debounceMs: number;
  /** Show the partially denoised canvas as ghost text while the engine works. */
  streaming: boolean;
  /** Per language id; `*` is the default for languages not listed. */
  enable: Record<string, boolean>;
  /** How requests reuse the prompt computed for the document's previous request (or a warm-up), or `off`. */
  promptReuse: PromptReuseSetting;
}

export type PromptReuseSetting = PromptReuseMode | 'off';

export interface SettingProblem {
  key: string;
  message: string;
}

export interface ReadSettings {
  settings: DlmSettings;
  problems: SettingProblem[];
}

/** A validated value, or why the value is not acceptable. */
type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };
type Validator<T> = (value: unknown) => Checked<T>;

const accept = <T>(value: T): Checked<T> => ({ ok: true, value });
const reject = <T>(reason: string): Checked<T> => ({ ok: false, reason });

const integer =
  (min: number, max = Number.MAX_SAFE_INTEGER): Validator<number> =>
  (value) =>
    typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
      ? accept(value)
      : reject(`is not a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? ' up' : ` to ${max}`}`);

const fraction: Validator<number> = (value) =>
  typeof value === 'number' && value > 0 && value <= 1 ? accept(value) : reject('is not a number above 0 and at most 1');

const nonNegative: Validator<number> = (value) =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0 ? accept(value) : reject('is not a number from 0 up');

const oneOf =
  <T extends string>(values: readonly T[]): Validator<T> =>
  (value) =>
    typeof value === 'string' && (values as readonly string[]).includes(value)
      ? accept(value as T)
      : reject(`is not one of ${values.map((v) => `"${v}"`).join(', ')}`);

const boolean: Validator<boolean> = (value) => (typeof value === 'boolean' ? accept(value) : reject('is not true or false'));

const modelName: Validator<string> = (value) =>
  typeof value === 'string' && value.trim() !== ''
    ? accept(value.trim())
    : reject('is not "builtin", a model folder or a Hugging Face id');

const languageSwitches: Validator<Record<string, boolean>> = (value) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return reject('is not an object of language ids to true/false, e.g. {"*": true, "markdown": false}');
  }
  const entries = Object.entries(value as Record<string, unknown>);
  const bad = entries.find(([, on]) => typeof on !== 'boolean');
  return bad ? reject(`has "${bad[0]}" set to something other than true or false`) : accept(Object.fromEntries(entries) as Record<string, boolean>);
};

/** Setting key (after `dlm.`) for each decoding option the user may override. */
const DECODING_SETTINGS: { [K in keyof DecodingOptions]: [key: string, validate: Validator<DecodingOptions[K]>] } = {
  cache: ['cacheMode', oneOf(CACHE_MODES)],
  refreshInterval: ['refreshInterval', integer(0)],
  window: ['greedyWindow', integer(0)],
  greedyOrder: ['greedyOrder', oneOf(GREEDY_ORDERS)],
  steps: ['steps', integer(1)],
  blockLength: ['blockLength', integer(1)],
  schedule: ['schedule', oneOf(SCHEDULES)],
  algorithm: ['algorithm', oneOf(ALGORITHMS)],
  threshold: ['threshold', fraction],
  temperature: ['temperature', nonNegative],
  seed: ['seed', integer(0)],
};

/** The other settings, with the fallback used when a value is bad (kept equal to package.json's defaults). */
const GENERAL_SETTINGS: { [K in keyof Omit<DlmSettings, 'decoding'>]: [Validator<DlmSettings[K]>, DlmSettings[K]] } = {
  model: [modelName, 'builtin'],
  device: [oneOf(DEVICE_OPTIONS), 'auto'],
  fillLength: [integer(1, 1024), 32],
  lineFillLength: [integer(1, 256), 16],
  contextBytes: [integer(0, 1 << 20), 4096],
  debounceMs: [integer(0, 10_000), 200],
  streaming: [boolean, true],
  enable: [languageSwitches, { '*': true, plaintext: false, markdown: false, scminput: false }],
  promptReuse: [oneOf<PromptReuseSetting>([...PROMPT_REUSE_MODES, 'off']), 'full-depth'],
};

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** True when the user (or a workspace) set the key, as opposed to it falling back to package.json's default. */
function isSetByUser(config: vscode.WorkspaceConfiguration, key: string): boolean {
  const inspected = config.inspect(key);
  return (
    inspected !== undefined &&
    (inspected.globalValue !== undefined ||
      inspected.workspaceValue !== undefined ||
      inspected.workspaceFolderValue !== undefined)
  );
}

/**
 * Relative model paths are relative to the first workspace folder (the engine's working directory means
 * nothing to the user) and `~` is the home folder; a name that is no folder there (`builtin`, a Hugging Face
 * id such as `org/model`) passes through as it is.
 */
export function resolveModelSetting(model: string, workspaceFolder: string | undefined): string {
  if (model === 'builtin') return model;
  if (model === '~' || model.startsWith('~/') || model.startsWith('~\\')) return path.join(os.homedir(), model.slice(1));
  if (path.isAbsolute(model) || !workspaceFolder) return model;
  const candidate = path.resolve(workspaceFolder, model);
  return model.startsWith('.') || fs.existsSync(candidate) ? candidate : model;
}

export function readSettings(): ReadSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  const problems: SettingProblem[] = [];

  const general: Record<string, unknown> = {};
  for (const [name, [validate, fallback]] of Object.entries(GENERAL_SETTINGS) as [string, [Validator<unknown>, unknown]][]) {
    const value = config.get(name);
    const checked = value === undefined ? accept(fallback) : validate(value);
    if (checked.ok) {
      general[name] = checked.value;
    } else {
      problems.push({ key: `${SECTION}.${name}`, message: `${describe(value)} ${checked.reason}; using ${describe(fallback)}.` });
      general[name] = fallback;
    }
  }
  general.model = resolveModelSetting(general.model as string, vscode.workspace.workspaceFolders?.[0]?.uri.fsPath);

  const decoding: Record<string, unknown> = {};
  for (const [option, [key, validate]] of Object.entries(DECODING_SETTINGS) as [string, [string, Validator<unknown>]][]) {
    if (!isSetByUser(config, key)) continue;
    const value = config.get(key);
    const checked = validate(value);
    if (checked.ok) {
      decoding[option] = checked.value;
    } else {
      problems.push({ key: `${SECTION}.${key}`, message: `${describe(value)} ${checked.reason}; using the model's default.` });
    }
  }

  return {
    settings: { ...(general as Omit<DlmSettings, 'decoding'>), decoding: decoding as Partial<DecodingOptions> },
    problems,
  };
}

export function isEnabledForLanguage(settings: DlmSettings, languageId: string): boolean {
  return settings.enable[languageId] ?? settings.enable['*'] ?? true;
}

/** The settings whose change needs the model loaded again (everything else goes with each request). */
export function affectsModel(event: vscode.ConfigurationChangeEvent): boolean {
  return event.affectsConfiguration(`${SECTION}.model`) || event.affectsConfiguration(`${SECTION}.device`);
}

/** The reuse fields of an infill or warm-up request for the `dlm.promptReuse` setting. */
export function promptReuseParams(setting: PromptReuseSetting): { reusePrefix: boolean; reuseMode?: PromptReuseMode } {
  return setting === 'off' ? { reusePrefix: false } : { reusePrefix: true, reuseMode: setting };
}

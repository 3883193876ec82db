/**
 * Hugging Face model ids as `dlm.model` and the model picker take them: `owner/name` or `owner/name@revision`.
 * Shared by the engine (downloads) and the extension (checking what a user types).
 */
export interface HubModelId {
  repo: string;
  revision: string;
}

/** `owner/name` or `owner/name@revision`; null when `text` is not shaped like a hub id. */
export function parseHubModelId(text: string): HubModelId | null {
  const match = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@([\w.\-/]+))?$/.exec(text.trim());
  if (!match) return null;
  return { repo: `${match[1]}/${match[2]}`, revision: match[3] ?? 'main' };
}

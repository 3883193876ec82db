/**
 * Hugging Face model ids as `dlm.model` and the model picker take them: `owner/name` or `owner/name@revision`.
 * Shared by the engine (downloads) and the extension (checking what a user types).
 */
export interface HubModelId {
  repo: string;
  revision: string;
}

const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@([\w.\-/]+))?$/;
/** The hub's limit on an owner's and a repository's name. */
export const MAX_HUB_NAME_CHARS = 96;
/** Branch names and commit hashes fit; the revision is part of a folder name in the cache. */
export const MAX_HUB_REVISION_CHARS = 100;

/** `owner/name` or `owner/name@revision`; null when `text` is not shaped like a hub id or breaks the hub's limits. */
export function parseHubModelId(text: string): HubModelId | null {
  const match = HUB_ID.exec(text.trim());
  if (!match || hubIdProblem(text) !== undefined) return null;
  return { repo: `${match[1]}/${match[2]}`, revision: match[3] ?? 'main' };
}

/** Why `text`, shaped like a hub id, cannot be one (a name longer than the hub allows); undefined otherwise. */
export function hubIdProblem(text: string): string | undefined {
  const match = HUB_ID.exec(text.trim());
  if (!match) return undefined;
  const [, owner, name, revision] = match;
  for (const [what, value] of [['owner', owner], ['repository name', name]] as const) {
    if (value.length > MAX_HUB_NAME_CHARS) return `its ${what} has ${value.length} characters; the hub allows at most ${MAX_HUB_NAME_CHARS}`;
  }
  if (revision !== undefined && revision.length > MAX_HUB_REVISION_CHARS) {
    return `its revision has ${revision.length} characters; at most ${MAX_HUB_REVISION_CHARS} are accepted`;
  }
  return undefined;
}

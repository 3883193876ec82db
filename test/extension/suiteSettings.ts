/**
 * The suite drives the provider itself; VS Code's own automatic inline suggestions would race it for the
 * same places (the end-to-end tests cover that path).
 */
export const SUITE_SETTINGS = (model: string) => ({
  'dlm.model': model,
  'dlm.device': 'cpu',
  'editor.inlineSuggest.enabled': false,
});

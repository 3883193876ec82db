/**
 * The Hugging Face access token for gated or private models, kept in VS Code's secret storage (the OS keychain)
 * rather than in settings files, and sent to the engine only with a model load.
 */
import * as vscode from 'vscode';

const SECRET_KEY = 'dlm.huggingFaceToken';

export class HuggingFaceToken {
  constructor(private readonly secrets: vscode.SecretStorage) {}

  get(): Thenable<string | undefined> {
    return this.secrets.get(SECRET_KEY);
  }

  /** Asks for a token and stores it; resolves true when one was stored. */
  async ask(): Promise<boolean> {
    const token = await vscode.window.showInputBox({
      title: 'DLM: Hugging Face access token',
      prompt: 'A read token from huggingface.co/settings/tokens, for gated or private models. Stored in the OS keychain.',
      password: true,
      ignoreFocusOut: true,
      validateInput: (value) => (/^\S+$/.test(value.trim()) ? undefined : 'Paste the token (no spaces).'),
    });
    if (token === undefined) return false;
    await this.secrets.store(SECRET_KEY, token.trim());
    return true;
  }

  clear(): Thenable<void> {
    return this.secrets.delete(SECRET_KEY);
  }
}

/**
 * A secret the user gives once (an access token, an API key), kept in VS Code's secret storage (the OS keychain)
 * rather than in settings files, and asked for with a password box.
 */
import * as vscode from 'vscode';

export interface SecretDescription {
  /** The secret storage key. */
  key: string;
  /** The input box's title. */
  title: string;
  /** The input box's prompt: what to paste and where it comes from. */
  prompt: string;
}

export class StoredSecret {
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when the secret is stored or removed. */
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly description: SecretDescription,
  ) {}

  get(): Thenable<string | undefined> {
    return this.secrets.get(this.description.key);
  }

  /** Asks for the secret and stores it; resolves true when one was stored. */
  async ask(): Promise<boolean> {
    const value = await vscode.window.showInputBox({
      title: this.description.title,
      prompt: this.description.prompt,
      password: true,
      ignoreFocusOut: true,
      validateInput: (input) => (/^\S+$/.test(input.trim()) ? undefined : 'Paste the value (no spaces).'),
    });
    if (value === undefined) return false;
    await this.store(value.trim());
    return true;
  }

  async store(value: string): Promise<void> {
    await this.secrets.store(this.description.key, value);
    this.changed.fire();
  }

  async clear(): Promise<void> {
    await this.secrets.delete(this.description.key);
    this.changed.fire();
  }
}

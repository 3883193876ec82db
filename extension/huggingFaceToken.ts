/**
 * The Hugging Face access token for gated or private models, kept in VS Code's secret storage (the OS keychain)
 * rather than in settings files, and sent to the engine only with a model load.
 */
import type * as vscode from 'vscode';
import { StoredSecret } from './storedSecret';

export class HuggingFaceToken extends StoredSecret {
  constructor(secrets: vscode.SecretStorage) {
    super(secrets, {
      key: 'dlm.huggingFaceToken',
      title: 'DLM: Hugging Face access token',
      prompt: 'A read token from huggingface.co/settings/tokens, for gated or private models. Stored in the OS keychain.',
    });
  }
}

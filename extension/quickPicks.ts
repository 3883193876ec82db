/**
 * Quick picks that resolve to the chosen item (or undefined when dismissed), shown through one place so the
 * extension's API can name the one on screen: the in-host tests read its items and accept one with VS Code's
 * own `workbench.action.acceptSelectedQuickOpenItem`, as a user's Enter would.
 */
import * as vscode from 'vscode';

export interface PickOptions<T extends vscode.QuickPickItem> {
  title: string;
  placeholder?: string;
  /** Items known only later (the engine's answer): the pick shows busy until they arrive. */
  items: T[] | Promise<T[]>;
  onDidTriggerItemButton?: (event: vscode.QuickPickItemButtonEvent<T>, pick: vscode.QuickPick<T>) => void;
}

let visible: vscode.QuickPick<vscode.QuickPickItem> | undefined;

/** The extension's quick pick on screen, if any. */
export function visibleQuickPick(): vscode.QuickPick<vscode.QuickPickItem> | undefined {
  return visible;
}

export function pick<T extends vscode.QuickPickItem>(options: PickOptions<T>): Promise<T | undefined> {
  const quickPick = vscode.window.createQuickPick<T>();
  quickPick.title = options.title;
  quickPick.placeholder = options.placeholder;
  quickPick.matchOnDescription = true;
  quickPick.matchOnDetail = true;
  quickPick.ignoreFocusOut = true;
  return new Promise<T | undefined>((resolve, reject) => {
    let chosen: T | undefined;
    let failure: unknown;
    const done = () => {
      if (visible === quickPick) visible = undefined;
      quickPick.dispose();
      if (failure) reject(failure);
      else resolve(chosen);
    };
    quickPick.onDidAccept(() => {
      chosen = quickPick.activeItems[0];
      if (chosen) quickPick.hide();
    });
    quickPick.onDidHide(() => done());
    if (options.onDidTriggerItemButton) {
      const handler = options.onDidTriggerItemButton;
      quickPick.onDidTriggerItemButton((event) => handler(event, quickPick));
    }
    visible = quickPick as unknown as vscode.QuickPick<vscode.QuickPickItem>;
    quickPick.busy = true;
    quickPick.show();
    Promise.resolve(options.items).then(
      (items) => {
        quickPick.items = items;
        quickPick.busy = false;
      },
      (error: unknown) => {
        failure = error ?? new Error('the items could not be had');
        quickPick.hide();
      },
    );
  });
}

// A stand-in for the `vscode` module, enough to run the extension's activate() under node
// against a real daemon: VS Code itself cannot be downloaded where the tests run. It records
// what the extension shows (status bar items, output channels, message boxes) and answers its
// questions (quick picks, input boxes) from a script the test sets. Everything the extension
// does with the daemon is real; only the editor around it is this file.

import Module = require('module');

export interface FakeChannel {
  name: string;
  text: string;
  shown: number;
  cleared: number;
  disposed: boolean;
}

export interface FakeStatusItem {
  text: string;
  tooltip: string;
  shown: number;
  hidden: number;
  visible: boolean;
  disposed: boolean;
}

export const recorded = {
  channels: [] as FakeChannel[],
  statusItems: [] as FakeStatusItem[],
  errors: [] as string[],
  infos: [] as string[],
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  providers: new Map<string, { getChildren(): Promise<unknown[]>; onDidChangeTreeData: unknown }>(),
  config: {} as Record<string, unknown>,
  // Answers to the next questions, in order: a quick pick's label, an input box's text
  // (undefined: the user pressed Escape).
  answers: [] as Array<string | undefined>,
  inputBoxes: [] as Array<{ prompt?: string; validate?: (v: string) => unknown }>,
};

class EventEmitter<T> {
  private readonly listeners: Array<(e: T) => void> = [];
  readonly event = (l: (e: T) => void) => {
    this.listeners.push(l);
    return { dispose: () => undefined };
  };

  fire(e: T): void {
    for (const l of this.listeners) {
      l(e);
    }
  }
}

class TreeItem {
  description?: string;
  tooltip?: string;
  contextValue?: string;
  command?: unknown;
  constructor(readonly label: string, readonly collapsibleState: number) {}
}

const fake = {
  EventEmitter,
  TreeItem,
  TreeItemCollapsibleState: { None: 0, Collapsed: 1, Expanded: 2 },
  StatusBarAlignment: { Left: 1, Right: 2 },
  window: {
    createStatusBarItem(): FakeStatusItem & Record<string, unknown> {
      const item = {
        text: '', tooltip: '', shown: 0, hidden: 0, visible: false, disposed: false,
        command: undefined as unknown,
        show() { item.shown += 1; item.visible = true; },
        hide() { item.hidden += 1; item.visible = false; },
        dispose() { item.disposed = true; item.visible = false; },
      };
      recorded.statusItems.push(item);
      return item;
    },
    createOutputChannel(name: string): FakeChannel & Record<string, unknown> {
      const ch = {
        name, text: '', shown: 0, cleared: 0, disposed: false,
        append(t: string) { ch.text += t; },
        appendLine(t: string) { ch.text += `${t}\n`; },
        clear() { ch.text = ''; ch.cleared += 1; },
        show() { ch.shown += 1; },
        dispose() { ch.disposed = true; },
      };
      recorded.channels.push(ch);
      return ch;
    },
    showErrorMessage(m: string) {
      recorded.errors.push(m);
      return Promise.resolve(undefined);
    },
    showInformationMessage(m: string) {
      recorded.infos.push(m);
      return Promise.resolve(undefined);
    },
    showQuickPick(items: Array<{ label: string }>) {
      const want = recorded.answers.shift();
      return Promise.resolve(items.find((i) => i.label === want));
    },
    showInputBox(opts: { prompt?: string; validateInput?: (v: string) => unknown }) {
      recorded.inputBoxes.push({ prompt: opts.prompt, validate: opts.validateInput });
      return Promise.resolve(recorded.answers.shift());
    },
    registerTreeDataProvider(id: string, provider: never) {
      recorded.providers.set(id, provider);
      return { dispose: () => undefined };
    },
  },
  commands: {
    registerCommand(id: string, fn: (...args: unknown[]) => unknown) {
      recorded.commands.set(id, fn);
      return { dispose: () => recorded.commands.delete(id) };
    },
  },
  workspace: {
    getConfiguration() {
      return { get: (key: string) => recorded.config[key] };
    },
  },
};

/** Make `require('vscode')` return the stand-in (before the extension is loaded). */
export function install(): void {
  const m = Module as unknown as { _load: (...a: unknown[]) => unknown };
  const load = m._load;
  m._load = function (this: unknown, request: unknown, ...rest: unknown[]) {
    return request === 'vscode' ? fake : load.call(this, request, ...rest);
  };
}

// The VS Code side: a Jobs view, launch/build/cancel commands, and output channels that follow
// a job's log. All socket and protocol work is in ./client (tested without VS Code).
//
// - The view refreshes every 3 s. A daemon that is not there is said once, in the status bar
//   ("kitplay: no daemon"), and the view keeps retrying quietly; no message box per refresh.
// - One output channel per job: following a job again shows (and refills) the same channel;
//   channels of ended jobs beyond the newest MAX_CHANNELS are disposed, and all of them with
//   the extension.
// - Launch App asks for the app, then for its arguments (a line split as a shell would).

import * as vscode from 'vscode';
import {
  followLog, Job, jobApp, KitplayClient, KitplayError, socketPath, splitArgs, UNREACHABLE,
  UNTRUSTED,
} from './client';

const REFRESH_MS = 3000;
export const MAX_CHANNELS = 10;

let shared: KitplayClient | undefined;

function configuredSocket(): string {
  return socketPath(vscode.workspace.getConfiguration('kitplay').get<string>('socket') || '');
}

async function client(): Promise<KitplayClient> {
  if (!shared || shared.closed) {
    shared = await KitplayClient.connect(configuredSocket());
  }
  return shared;
}

function report(e: unknown): void {
  const message = e instanceof KitplayError ? e.message : String(e);
  void vscode.window.showErrorMessage(`kitplay: ${message}`);
}

/** When a job was created, in local time (the daemon sends seconds since the epoch). */
export function localTime(seconds: number | null | undefined): string {
  if (typeof seconds !== 'number') {
    return '';
  }
  const d = new Date(seconds * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

class JobItem extends vscode.TreeItem {
  constructor(readonly job: Job) {
    super(`${job.id}`, vscode.TreeItemCollapsibleState.None);
    const app = jobApp(job);
    this.description = `${job.kind}${app ? ` ${app}` : ''} · ${job.status} · ` +
      localTime(job.created_at);
    this.tooltip = `${job.kind} ${job.id}: ${job.status}` +
      (job.error ? `\n${job.error.message}` : '');
    this.contextValue = job.status;
    this.command = { command: 'kitplay.followLog', title: 'Follow Job Log', arguments: [this] };
  }
}

/** The status bar's word on the daemon: shown once when it is lost, hidden when it is back. */
class DaemonStatus implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  lost = false;

  constructor() {
    this.item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left);
    this.item.command = 'kitplay.refreshJobs';
  }

  unreachable(e: KitplayError): void {
    const untrusted = (e.data as { reason?: string } | undefined)?.reason === UNTRUSTED;
    this.item.text = untrusted ? '$(warning) kitplay: socket refused'
      : '$(debug-disconnect) kitplay: no daemon';
    this.item.tooltip = `${e.message}\n\nThe Jobs view tries again every ${REFRESH_MS / 1000} s.`;
    if (!this.lost) {
      this.lost = true;
      this.item.show();
    }
  }

  reachable(): void {
    if (this.lost) {
      this.lost = false;
      this.item.hide();
    }
  }

  dispose(): void {
    this.item.dispose();
  }
}

class JobsView implements vscode.TreeDataProvider<JobItem> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly status: DaemonStatus) {}

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(item: JobItem): vscode.TreeItem {
    return item;
  }

  async getChildren(): Promise<JobItem[]> {
    try {
      const jobs = await (await client()).jobs(100);
      this.status.reachable();
      return jobs.map((j) => new JobItem(j));
    } catch (e) {
      if (e instanceof KitplayError && e.code === UNREACHABLE) {
        this.status.unreachable(e); // said once; the next refresh tries again quietly
      } else {
        report(e);
      }
      return [];
    }
  }
}

/** The output channels, one per job, reused and disposed here. */
class Channels implements vscode.Disposable {
  private readonly byJob = new Map<string, { channel: vscode.OutputChannel; following: boolean }>();

  follow(jobId: string): void {
    let entry = this.byJob.get(jobId);
    if (entry) {
      this.byJob.delete(jobId); // re-inserted below: the newest last
      this.byJob.set(jobId, entry);
      entry.channel.show(true);
      if (entry.following) {
        return; // already streaming into it
      }
      entry.channel.clear(); // followed again from the start: the whole log, once
    } else {
      entry = { channel: vscode.window.createOutputChannel(`kitplay ${jobId}`), following: false };
      this.byJob.set(jobId, entry);
      entry.channel.show(true);
    }
    const it = entry;
    it.following = true;
    this.trim();
    const decoder = new TextDecoder('utf-8'); // streaming: a character split across chunks
    followLog(jobId, (bytes) => it.channel.append(decoder.decode(bytes, { stream: true })), {
      socket: configuredSocket(),
      onReconnect: () => it.channel.appendLine('\n[kitplay extension] reconnected; resuming'),
    }).then((job) => {
      it.channel.appendLine(`[kitplay extension] job ${jobId} ${job.status}`);
    }, report).finally(() => {
      it.following = false;
      this.trim();
    });
  }

  /** Dispose the oldest channels that no longer follow anything, beyond MAX_CHANNELS. */
  private trim(): void {
    for (const [id, entry] of this.byJob) {
      if (this.byJob.size <= MAX_CHANNELS) {
        break;
      }
      if (!entry.following) {
        entry.channel.dispose();
        this.byJob.delete(id);
      }
    }
  }

  dispose(): void {
    for (const entry of this.byJob.values()) {
      entry.channel.dispose();
    }
    this.byJob.clear();
  }
}

let channels: Channels | undefined;

async function pickJob(status?: Job['status']): Promise<string | undefined> {
  const jobs = (await (await client()).jobs(100)).filter((j) => !status || j.status === status);
  const pick = await vscode.window.showQuickPick(
    jobs.map((j) => ({ label: j.id, description: `${j.kind} ${jobApp(j)} · ${j.status}` })),
    { placeHolder: 'Job' });
  return pick?.label;
}

async function pickApp(allowAll: boolean): Promise<string | null | undefined> {
  const apps = await (await client()).apps();
  const items = apps.map((a) => ({ label: a.name, description: a.display_name ?? '' }));
  const all = { label: '$(package) the whole workspace', description: '' };
  const pick = await vscode.window.showQuickPick(allowAll ? [all, ...items] : items,
                                                 { placeHolder: 'App' });
  if (!pick) {
    return undefined;
  }
  return pick === all ? null : pick.label;
}

/** The launch arguments, asked for: undefined when the user cancels (Escape). */
async function askArgs(app: string): Promise<string[] | undefined> {
  const line = await vscode.window.showInputBox({
    title: `Launch ${app}`,
    prompt: `Arguments for ${app} (optional; quote one that has spaces)`,
    placeHolder: '--lines 3',
    validateInput: (value) => {
      try {
        splitArgs(value);
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    },
  });
  return line === undefined ? undefined : splitArgs(line);
}

export function activate(context: vscode.ExtensionContext): void {
  const status = new DaemonStatus();
  const view = new JobsView(status);
  channels = new Channels();
  const timer = setInterval(() => view.refresh(), REFRESH_MS);
  const follow = (id: string) => channels?.follow(id);
  context.subscriptions.push(
    status,
    channels,
    vscode.window.registerTreeDataProvider('kitplay.jobs', view),
    { dispose: () => clearInterval(timer) },
    { dispose: () => shared?.dispose() },
    vscode.commands.registerCommand('kitplay.refreshJobs', () => view.refresh()),
    vscode.commands.registerCommand('kitplay.launch', async () => {
      try {
        const app = await pickApp(false);
        if (!app) {
          return;
        }
        const args = await askArgs(app);
        if (args === undefined) {
          return;
        }
        const job = await (await client()).launch(app, args);
        view.refresh();
        follow(job.id);
      } catch (e) {
        report(e);
      }
    }),
    vscode.commands.registerCommand('kitplay.build', async () => {
      try {
        const app = await pickApp(true);
        if (app === undefined) {
          return;
        }
        const job = await (await client()).build(app ?? undefined);
        view.refresh();
        follow(job.id);
      } catch (e) {
        report(e);
      }
    }),
    vscode.commands.registerCommand('kitplay.cancel', async (item?: JobItem) => {
      try {
        const id = item?.job.id ?? await pickJob('running');
        if (!id) {
          return;
        }
        const job = await (await client()).cancel(id);
        void vscode.window.showInformationMessage(`kitplay: job ${id} ${job.status}`);
        view.refresh();
      } catch (e) {
        report(e);
      }
    }),
    vscode.commands.registerCommand('kitplay.followLog', async (item?: JobItem) => {
      try {
        const id = item?.job.id ?? await pickJob();
        if (id) {
          follow(id);
        }
      } catch (e) {
        report(e);
      }
    }),
  );
}

export function deactivate(): void {
  channels?.dispose();
  channels = undefined;
  shared?.dispose();
  shared = undefined;
}

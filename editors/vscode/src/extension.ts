// The VS Code side: a Jobs view, launch/build/cancel commands, and output channels that follow
// a job's log. All socket and protocol work is in ./client (tested without VS Code).

import * as vscode from 'vscode';
import { followLog, Job, KitplayClient, KitplayError, socketPath } from './client';

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

class JobItem extends vscode.TreeItem {
  constructor(readonly job: Job) {
    super(`${job.id}`, vscode.TreeItemCollapsibleState.None);
    const app = typeof job.params?.app === 'string' ? ` ${job.params.app}` : '';
    this.description = `${job.kind}${app} · ${job.status}`;
    this.tooltip = `${job.kind} ${job.id}: ${job.status}` +
      (job.error ? `\n${job.error.message}` : '');
    this.contextValue = job.status;
    this.command = { command: 'kitplay.followLog', title: 'Follow Job Log', arguments: [this] };
  }
}

class JobsView implements vscode.TreeDataProvider<JobItem> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(item: JobItem): vscode.TreeItem {
    return item;
  }

  async getChildren(): Promise<JobItem[]> {
    try {
      return (await (await client()).jobs(100)).map((j) => new JobItem(j));
    } catch (e) {
      report(e);
      return [];
    }
  }
}

async function pickJob(status?: Job['status']): Promise<string | undefined> {
  const jobs = (await (await client()).jobs(100)).filter((j) => !status || j.status === status);
  const pick = await vscode.window.showQuickPick(
    jobs.map((j) => ({ label: j.id, description: `${j.kind} · ${j.status}` })),
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

function follow(jobId: string): void {
  const channel = vscode.window.createOutputChannel(`kitplay ${jobId}`);
  channel.show(true);
  const decoder = new TextDecoder('utf-8'); // streaming: a character split across chunks
  followLog(jobId, (bytes) => channel.append(decoder.decode(bytes, { stream: true })), {
    socket: configuredSocket(),
    onReconnect: () => channel.appendLine('\n[kitplay extension] reconnected; resuming'),
  }).then((job) => {
    channel.appendLine(`[kitplay extension] job ${jobId} ${job.status}`);
  }, report);
}

export function activate(context: vscode.ExtensionContext): void {
  const view = new JobsView();
  const timer = setInterval(() => view.refresh(), 3000);
  context.subscriptions.push(
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
        const job = await (await client()).launch(app);
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
  shared?.dispose();
}

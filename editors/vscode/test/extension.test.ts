// The extension's VS Code half (src/extension.ts) run under node against a real kitplayd, with
// test/vscode-fake.ts standing in for the editor: what it shows and asks is recorded there.
// Checked: the Jobs view says a lost daemon once, in the status bar, and retries quietly (no
// message box per refresh) until the daemon is back; rows show the app of every job (a
// create's new name too) and the local time; Launch App asks for arguments and passes them
// split as a shell would; output channels are reused per job, old ones disposed, all of them
// with the extension.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import { KitplayClient } from '../src/client';
import { Daemon, waitFor } from './daemon';
import { FakeChannel, install, recorded } from './vscode-fake';

install();
// Loaded after install(): its `import 'vscode'` gets the stand-in.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const ext = require('../src/extension') as typeof import('../src/extension');

const ARGS = 'import sys\nprint("args:", sys.argv[1:])\n';
const daemon = new Daemon();
const T = { timeout: 90_000 };
const context = { subscriptions: [] as Array<{ dispose(): unknown }> };

before(async () => {
  daemon.writeApp('t.args', ARGS);
  await daemon.start();
  recorded.config.socket = daemon.socket;
  ext.activate(context as never);
});

after(async () => {
  ext.deactivate();
  for (const d of context.subscriptions) {
    d.dispose();
  }
  // Every channel and the status bar item are gone with the extension.
  assert.ok(recorded.channels.every((c) => c.disposed));
  assert.ok(recorded.statusItems.every((s) => s.disposed));
  await daemon.stop();
  fs.rmSync(daemon.base, { recursive: true, force: true });
});

function view(): { getChildren(): Promise<Array<{ label: string; description?: string }>> } {
  const p = recorded.providers.get('kitplay.jobs');
  assert.ok(p, 'the Jobs view is registered');
  return p as never;
}

async function run(command: string, ...args: unknown[]): Promise<void> {
  const fn = recorded.commands.get(command);
  assert.ok(fn, `${command} is registered`);
  await fn(...args);
}

function channelOf(jobId: string): FakeChannel[] {
  return recorded.channels.filter((c) => c.name === `kitplay ${jobId}`);
}

test('rows show every job\'s app and its local time', T, async () => {
  const c = await KitplayClient.connect(daemon.socket);
  try {
    const job = (await c.call<any>('templates.create',
      { template: 'console_app', name: 'my_company.rows' })).job;
    assert.equal(typeof job.created_at, 'number'); // as the Job type says
    await c.call('jobs.wait', { job_id: job.id, timeout_s: 60 });
    const items = await view().getChildren();
    const row = items.find((i) => i.label === job.id);
    assert.ok(row, 'the create job is listed');
    assert.equal(row.description, `create my_company.rows · succeeded · ${ext.localTime(job.created_at)}`);
    assert.match(ext.localTime(job.created_at), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    const d = new Date(job.created_at * 1000);
    assert.ok(ext.localTime(job.created_at).endsWith(
      `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:` +
      `${String(d.getSeconds()).padStart(2, '0')}`));
  } finally {
    c.dispose();
  }
});

test('a lost daemon is said once, in the status bar, and the view retries quietly', T, async () => {
  assert.ok((await view().getChildren()).length > 0);
  const item = recorded.statusItems[0];
  assert.equal(item.shown, 0);
  await daemon.stop();
  for (let i = 0; i < 4; i++) { // four refreshes while it is away
    assert.deepEqual(await view().getChildren(), []);
  }
  assert.deepEqual(recorded.errors, []); // no message box at all
  assert.equal(item.shown, 1);
  assert.ok(item.visible);
  assert.match(item.text, /kitplay: no daemon/);
  assert.match(item.tooltip, /no kitplay daemon is listening/);
  await daemon.start();
  assert.ok((await view().getChildren()).length > 0);
  assert.ok(!item.visible && item.hidden === 1);
});

test('Launch App asks for arguments and passes them as words', T, async () => {
  const c = await KitplayClient.connect(daemon.socket);
  try {
    const before = (await c.jobs(100)).length;
    recorded.answers.push('t.args', undefined); // Escape at the arguments: nothing launched
    await run('kitplay.launch');
    assert.equal((await c.jobs(100)).length, before);
    const box = recorded.inputBoxes[0];
    assert.match(box.prompt ?? '', /Arguments for t\.args/);
    assert.equal(box.validate?.('"open'), 'an unclosed " quote');
    assert.equal(box.validate?.('--ok'), undefined);

    recorded.answers.push('t.args', `--lines 3 'two words' "say \\"hi\\""`);
    await run('kitplay.launch');
    const job = (await c.jobs(1))[0];
    assert.deepEqual(job.params.args, ['--lines', '3', 'two words', 'say "hi"']);
    await waitFor('the channel to show the end', () =>
      channelOf(job.id)[0]?.text.includes(`job ${job.id} succeeded`));
    assert.match(channelOf(job.id)[0].text, /args: \['--lines', '3', 'two words', 'say "hi"'\]/);
  } finally {
    c.dispose();
  }
});

test('one output channel per job, reused; the oldest disposed', T, async () => {
  const c = await KitplayClient.connect(daemon.socket);
  try {
    const job = await c.launch('t.args', ['x']);
    await c.call('jobs.wait', { job_id: job.id, timeout_s: 60 });
    await run('kitplay.followLog', { job });
    // Until the extension's own closing line, the first follow is still going (its log's
    // "[kitplay] job succeeded" comes before it), and a second one would join it.
    const ended = `[kitplay extension] job ${job.id} succeeded`;
    await waitFor('the first follow', () => channelOf(job.id)[0]?.text.includes(ended));
    const first = channelOf(job.id)[0].text;
    await run('kitplay.followLog', { job });
    await waitFor('the second follow', () => channelOf(job.id)[0].cleared === 1 &&
      channelOf(job.id)[0].text.includes(ended));
    assert.equal(channelOf(job.id).length, 1); // the same channel, refilled
    assert.equal(channelOf(job.id)[0].text, first);
    // Followed many jobs: the oldest channels are disposed, at most MAX_CHANNELS stay open.
    for (let i = 0; i < ext.MAX_CHANNELS + 3; i++) {
      const j = await c.launch('t.args', [String(i)]);
      await run('kitplay.followLog', { job: j });
      await waitFor(`job ${i}`, () => channelOf(j.id)[0]?.text.includes('succeeded'));
    }
    // (Trimmed once the last follow has ended, just after its last line.)
    const open = () => recorded.channels.filter((ch) => !ch.disposed);
    await waitFor('the oldest channels to go', () => open().length === ext.MAX_CHANNELS);
    assert.ok(recorded.channels.length > ext.MAX_CHANNELS);
    assert.ok(channelOf(job.id)[0].disposed); // the oldest
  } finally {
    c.dispose();
  }
});

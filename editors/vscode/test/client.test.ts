// The extension's client module against a real kitplayd (node's test runner: `node --test`).
// vscode-jsonrpc speaks the LSP base-protocol framing; the daemon must answer it, push
// jobs.output / jobs.state notifications in it, and survive a restart under a follower.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import {
  CancellationTokenSource,
  createMessageConnection,
  SocketMessageReader,
  SocketMessageWriter,
} from 'vscode-jsonrpc/node';
import {
  checkSocket, followLog, KitplayClient, KitplayError, StateNote, socketPath, UNTRUSTED,
} from '../src/client';
import { Daemon, waitFor } from './daemon';

const LINES = 'import sys\nfor i in range(int(sys.argv[1])):\n    print(f"line {i}")\n';
const TICKER = 'import pathlib, sys, time\nstop = pathlib.Path(sys.argv[1])\ni = 0\n' +
  'while not stop.exists():\n    i += 1\n    print(f"tick {i}", flush=True)\n' +
  '    time.sleep(0.05)\nprint("end", flush=True)\n';

// Bytes that are not UTF-8, and a character split across writes; the rest once `go` exists.
const BYTES = 'import os, sys, time\nout = sys.stdout.buffer\n' +
  'out.write(b"caf\\xe9 \\xff half \\xe2\\x82"); out.flush()\n' +
  'while not os.path.exists(os.path.join(sys.argv[1], "go")):\n    time.sleep(0.01)\n' +
  'out.write(b"\\xac \\xfe end\\n"); out.flush()\n';

const daemon = new Daemon();
const T = { timeout: 60_000 }; // every test: an absolute deadline, never a hang

before(async () => {
  daemon.writeApp('t.lines', LINES);
  daemon.writeApp('t.ticker', TICKER);
  daemon.writeApp('t.bytes', BYTES);
  await daemon.start();
});

after(async () => {
  // Launched apps outlive the daemon by design: stop any a failed test left running.
  const c = await KitplayClient.connect(daemon.socket);
  for (const j of await c.jobs(100)) {
    if (j.status === 'running' || j.status === 'queued') {
      await c.cancel(j.id).catch(() => undefined);
    }
  }
  c.dispose();
  await daemon.stop();
  fs.rmSync(daemon.base, { recursive: true, force: true });
});

function connect(socket: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socket, () => resolve(s));
    s.once('error', reject);
  });
}

test('vscode-jsonrpc calls daemon.status and follows a job through jobs.subscribe', T, async () => {
  const sock = await connect(daemon.socket);
  const conn = createMessageConnection(new SocketMessageReader(sock),
                                       new SocketMessageWriter(sock));
  const notes: Array<[string, any]> = [];
  let final: (() => void) | undefined;
  const ended = new Promise<void>((r) => { final = r; });
  conn.onNotification('jobs.output', (p: any) => notes.push(['jobs.output', p]));
  conn.onNotification('jobs.state', (p: any) => {
    notes.push(['jobs.state', p]);
    if (p.final) {
      final?.();
    }
  });
  conn.listen();
  try {
    const status: any = await conn.sendRequest('daemon.status');
    assert.equal(status.pid, daemon.pid);
    assert.equal(status.socket, daemon.socket);
    const { job }: any = await conn.sendRequest('launch', { app: 't.lines', args: ['3000'] });
    const { subscription }: any = await conn.sendRequest('jobs.subscribe',
                                                         { job_id: job.id, offset: 0 });
    await ended;
    assert.ok(notes.every(([, p]) => p.subscription === subscription));
    const outputs = notes.filter(([m]) => m === 'jobs.output').map(([, p]) => p);
    let offset = 0;
    for (const o of outputs) { // contiguous byte offsets, no gap, no overlap
      assert.equal(o.offset, offset);
      offset = o.next_offset;
    }
    const text = outputs.map((o) => o.data).join('');
    assert.equal(text, daemon.jobLog(job.id));
    assert.match(text, /line 2999\n/);
    const last = notes[notes.length - 1];
    assert.equal(last[0], 'jobs.state');
    assert.equal(last[1].job.status, 'succeeded');
    // An error answer comes back as a ResponseError with the daemon's code.
    await assert.rejects(conn.sendRequest('jobs.get', { job_id: 'nope' }),
                         (e: any) => e.code === -32001 && /no job with id/.test(e.message));
  } finally {
    conn.dispose();
    sock.destroy();
  }
});

test('the client module: status, apps, jobs, launch, cancel, errors', T, async () => {
  const c = await KitplayClient.connect(daemon.socket);
  try {
    assert.equal((await c.status()).pid, daemon.pid);
    assert.deepEqual((await c.apps()).map((a) => a.name).sort(), ['t.bytes', 't.lines', 't.ticker']);
    const never = path.join(daemon.base, 'never');
    const job = await c.launch('t.ticker', [never]);
    assert.equal(job.kind, 'launch');
    assert.ok((await c.jobs()).some((j) => j.id === job.id));
    await waitFor('the ticker to print', () => /tick 1\n/.test(daemon.jobLog(job.id)));
    await c.cancel(job.id);
    const waited = await c.call<any>('jobs.wait', { job_id: job.id, timeout_s: 30 });
    assert.equal(waited.job.status, 'cancelled');
    await assert.rejects(c.cancel('nope'), (e: unknown) =>
      e instanceof KitplayError && e.code === -32001);
    await assert.rejects(c.launch('no.such_app'), (e: unknown) => e instanceof KitplayError);
  } finally {
    c.dispose();
  }
});

test('a CancellationToken ends a waiting call: $/cancelRequest answered -32800', T, async () => {
  const c = await KitplayClient.connect(daemon.socket);
  const never = path.join(daemon.base, 'never-cancel');
  const job = await c.launch('t.ticker', [never]);
  try {
    const source = new CancellationTokenSource();
    const waiting = c.call('jobs.wait', { job_id: job.id, timeout_s: 600 }, source.token);
    source.cancel(); // vscode-jsonrpc sends $/cancelRequest; the daemon must answer it
    await assert.rejects(waiting, (e: unknown) => e instanceof KitplayError &&
      e.code === -32800 && /\$\/cancelRequest/.test(e.message));
    assert.equal((await c.status()).pid, daemon.pid); // the connection still serves
    const job2 = await c.call<any>('jobs.get', { job_id: job.id });
    assert.equal(job2.job.status, 'running'); // the job itself runs on
  } finally {
    await c.cancel(job.id);
    c.dispose();
  }
});

test('subscribe() gives each chunk and the final state', T, async () => {
  const c = await KitplayClient.connect(daemon.socket);
  try {
    const job = await c.launch('t.lines', ['500']);
    let text = '';
    const states: StateNote[] = [];
    const { ended } = await c.subscribe(job.id, 0, (n) => { text += n.data; },
                                        (n) => states.push(n));
    const final = await ended;
    assert.equal(final.status, 'succeeded');
    assert.equal(text, daemon.jobLog(job.id));
    assert.ok(states[states.length - 1].final);
  } finally {
    c.dispose();
  }
});

test('followLog resumes after a daemon restart: nothing lost, nothing repeated', T, async () => {
  const stop = path.join(daemon.base, 'stop');
  const c = await KitplayClient.connect(daemon.socket);
  const job = await c.launch('t.ticker', [stop]);
  c.dispose();
  let text = '';
  let reconnects = 0;
  const followed = followLog(job.id, (t) => { text += t.toString('utf-8'); }, {
    socket: daemon.socket, retryMs: 100, onReconnect: () => { reconnects += 1; },
  });
  await waitFor('three ticks', () => (text.match(/tick \d+\n/g) ?? []).length >= 3);
  await daemon.stop(); // the launched app keeps running; the follower loses its connection
  await daemon.start();
  await waitFor('the follower to reconnect', () => reconnects >= 1);
  fs.writeFileSync(stop, '');
  const final = await followed;
  assert.equal(final.status, 'succeeded');
  assert.equal(text, daemon.jobLog(job.id));
  assert.match(text, /end\n/);
});

test('followLog gives the exact bytes of a log that is not UTF-8, across a restart', T,
     async () => {
  const gates = path.join(daemon.base, 'gates');
  fs.mkdirSync(gates, { recursive: true });
  const c = await KitplayClient.connect(daemon.socket);
  const job = await c.launch('t.bytes', [gates]);
  c.dispose();
  const chunks: Buffer[] = [];
  let reconnects = 0;
  const followed = followLog(job.id, (b) => { chunks.push(b); }, {
    socket: daemon.socket, retryMs: 100, onReconnect: () => { reconnects += 1; },
  });
  const got = () => Buffer.concat(chunks);
  await waitFor('the first half', () => got().includes(Buffer.from('caf\xe9 \xff', 'latin1')));
  await daemon.stop(); // the app keeps running; the follower resumes from its byte offset
  await daemon.start();
  await waitFor('the follower to reconnect', () => reconnects >= 1);
  fs.writeFileSync(path.join(gates, 'go'), '');
  const final = await followed;
  assert.equal(final.status, 'succeeded');
  const log = fs.readFileSync(path.join(daemon.state, 'logs', `${job.id}.log`));
  assert.ok(log.includes(Buffer.from([0xe2, 0x82, 0xac, 0x20, 0xfe])));
  assert.ok(got().equals(log), 'the bytes followed differ from the log file');
});

test('errors: no daemon, and the socket path rules', T, async () => {
  await assert.rejects(KitplayClient.connect(path.join(daemon.base, 'none.sock')),
                       (e: unknown) => e instanceof KitplayError && e.code === -32099 &&
                         /no kitplay daemon is listening/.test(e.message));
  // A real answer (no such job) ends followLog at once; only a lost daemon is retried.
  await assert.rejects(followLog('nope', () => undefined, { socket: daemon.socket }),
                       (e: unknown) => e instanceof KitplayError && e.code === -32001);
  assert.equal(socketPath('/x.sock', {}), '/x.sock');
  assert.equal(socketPath(undefined, { KITPLAY_SOCKET: '/k.sock' }), '/k.sock');
  assert.equal(socketPath(undefined, { XDG_RUNTIME_DIR: '/run/user/5' }),
               '/run/user/5/kitplay/kitplayd.sock');
  assert.match(socketPath(undefined, {}), /^\/tmp\/kitplay-\d+\/kitplayd\.sock$/);
});

test('a socket another user could have placed is refused before connecting', T, async () => {
  // The same user's mistakes here; another user's traps are tests/test_editor_sockets.py.
  const untrusted = (what: RegExp) => (e: unknown) =>
    e instanceof KitplayError && e.code === -32099 &&
    (e.data as { reason?: string }).reason === UNTRUSTED && what.test(e.message);
  checkSocket(daemon.socket); // the daemon's own: a 0700 directory of ours, our socket
  const run = path.dirname(daemon.socket);
  const open = path.join(daemon.base, 'open');
  fs.mkdirSync(open, { mode: 0o700 });
  fs.chmodSync(open, 0o755);
  const link = path.join(daemon.base, 'link');
  fs.symlinkSync(run, link);
  const notSock = path.join(run, 'plain.sock');
  fs.writeFileSync(notSock, '');
  const sockLink = path.join(run, 'link.sock');
  fs.symlinkSync(daemon.socket, sockLink);
  try {
    await assert.rejects(KitplayClient.connect(path.join(open, 'kitplayd.sock')),
                         untrusted(/directory .*open is open to others \(mode 755, not 700\)/));
    await assert.rejects(KitplayClient.connect(path.join(link, 'kitplayd.sock')),
                         untrusted(/directory .*link is a symlink/));
    await assert.rejects(KitplayClient.connect(notSock), untrusted(/it is not a socket/));
    await assert.rejects(KitplayClient.connect(sockLink), untrusted(/it is a symlink/));
    // followLog stops at once on such a socket: it is not a daemon restarting.
    await assert.rejects(followLog('j', () => undefined, { socket: sockLink, retryMs: 10 }),
                         untrusted(/symlink/));
    // Another user's directory or socket, as lstat shows them (uid 12345 is not us).
    assert.throws(() => checkSocket(daemon.socket, 12345),
                  untrusted(/belongs to another user \(uid \d+\), not to you \(uid 12345\)/));
  } finally {
    fs.rmSync(open, { recursive: true });
    fs.rmSync(link);
    fs.rmSync(notSock);
    fs.rmSync(sockLink);
  }
});

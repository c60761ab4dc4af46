// A real kitplayd for the tests: `python -m kitplay.daemon` on a socket in a fresh temporary directory,
// as tests/helpers.py starts it. Readiness is the socket answering (with a deadline), never a
// sleep. Needs KITPLAY_TEST_PYTHON (the interpreter) and KITPLAY_TEST_ROOT (the repository),
// which tests/test_editor_vscode.py sets.

import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';

export const PYTHON = process.env.KITPLAY_TEST_PYTHON ?? 'python3';
export const ROOT = process.env.KITPLAY_TEST_ROOT ?? path.resolve(__dirname, '..', '..', '..', '..');

export async function waitFor<T>(what: string, cond: () => T | Promise<T>,
                                 timeoutMs = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const v = await cond();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class Daemon {
  readonly socket: string;
  readonly state: string;
  readonly workspace: string;
  private proc: ChildProcess | undefined;

  constructor(readonly base: string = fs.mkdtempSync('/tmp/kpv')) {
    this.socket = path.join(base, 'run', 'kitplayd.sock');
    this.state = path.join(base, 'state');
    this.workspace = path.join(base, 'ws');
    fs.mkdirSync(this.workspace, { recursive: true });
    fs.writeFileSync(path.join(base, 'config.toml'), '');
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** An app whose launch runs `python -c code` (kitapp.toml, as tests/helpers.py writes it). */
  writeApp(name: string, code: string): void {
    const dir = path.join(this.workspace, 'source', 'apps', name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'kitapp.toml'),
      `[app]\nname = "${name}"\ndisplay_name = "Test"\nversion = "0.1.0"\ntemplate = "test"\n\n` +
      `[launch]\nargv = ${JSON.stringify(['{python}', '-c', code])}\n`);
  }

  async start(): Promise<void> {
    const log = fs.openSync(path.join(this.base, 'kitplayd.log'), 'a');
    this.proc = spawn(PYTHON, ['-m', 'kitplay.daemon', '--socket', this.socket, '--state-dir', this.state,
                               '--workspace', this.workspace, '--config',
                               path.join(this.base, 'config.toml')], {
      env: { ...process.env, PYTHONPATH: ROOT, KITPLAY_SOCKET: '', KITPLAY_STATE_DIR: '' },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    const proc = this.proc;
    await waitFor('kitplayd to answer on its socket', async () => {
      if (proc.exitCode !== null) {
        throw new Error(`kitplayd exited: ${this.log()}`);
      }
      return answers(this.socket);
    });
  }

  log(): string {
    return fs.readFileSync(path.join(this.base, 'kitplayd.log'), 'utf-8');
  }

  /** The job's log file as it is now ('' before the job has written one). */
  jobLog(jobId: string): string {
    try {
      return fs.readFileSync(path.join(this.state, 'logs', `${jobId}.log`), 'utf-8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        return '';
      }
      throw e;
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) {
      return;
    }
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }
}

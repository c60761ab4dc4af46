// kitplayd's socket, spoken with vscode-jsonrpc: every line of socket and protocol code of the
// extension is here, and nothing here imports `vscode`, so node's test runner can drive it
// against a real daemon (test/client.test.ts).
//
// vscode-jsonrpc frames messages with the LSP base protocol (`Content-Length: N\r\n\r\n` +
// body); kitplayd serves that framing beside NDJSON on the same socket, chosen by a
// connection's first bytes (docs/api.md, "The Unix socket").

import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import {
  CancellationToken,
  createMessageConnection,
  MessageConnection,
  ResponseError,
  SocketMessageReader,
  SocketMessageWriter,
} from 'vscode-jsonrpc/node';

/**
 * A job record as the daemon sends it (daemon/protocol/schemas.py, JOB): times are seconds
 * since the epoch (numbers), `result` an object or null.
 */
export interface Job {
  id: string;
  kind: 'create' | 'build' | 'launch' | 'test' | 'package' | 'package_container' | 'modify';
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';
  params: Record<string, unknown>;
  workspace?: string;
  toolchain?: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  exit_code: number | null;
  result: Record<string, unknown> | null;
  error: { message: string; step?: string | null } | null;
  progress?: { step: number; steps: number; message: string } | null;
  pid?: number | null;
  restarts?: number;
  log_size?: number;
  /** Seconds it ran, on the monotonic clock; null until it ends. */
  duration_s?: number | null;
}

/** The app a job is about: `app`, or the new app's `name` for a create ('' for neither). */
export function jobApp(job: Job): string {
  const p = job.params ?? {};
  const app = typeof p.app === 'string' ? p.app : typeof p.name === 'string' ? p.name : '';
  return app;
}

/**
 * Split a line of arguments as a shell would, without running one: words separated by
 * spaces; '...' keeps everything, "..." keeps all but \" and \\, a backslash outside quotes
 * escapes the next character. Throws on an unclosed quote.
 */
export function splitArgs(line: string): string[] {
  const out: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) {
        out.push(word);
        word = '';
        inWord = false;
      }
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) {
        throw new Error('an unclosed \' quote');
      }
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && (line[j + 1] === '"' || line[j + 1] === '\\')) {
          j++;
        }
        word += line[j];
      }
      if (j >= line.length) {
        throw new Error('an unclosed " quote');
      }
      inWord = true;
      i = j;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) {
    out.push(word);
  }
  return out;
}

export interface App {
  name: string;
  display_name: string | null;
  type: string;
  built?: boolean;
}

export interface OutputNote {
  subscription: string;
  job_id: string;
  offset: number;
  next_offset: number;
  data: string;
  /** With encoding 'auto' or 'base64': how `data` holds the bytes (docs/api.md). */
  encoding?: 'utf-8' | 'base64';
}

/** How log chunks come: 'text' (bytes that are not UTF-8 become U+FFFD), 'auto' (text when a
 *  chunk is valid UTF-8, else base64: exact) or 'base64' (always: exact). */
export type LogEncoding = 'text' | 'auto' | 'base64';

/** The log bytes of an output note: exact, unless it came in the lossy 'text' encoding. */
export function noteBytes(note: { data: string; encoding?: string }): Buffer {
  return Buffer.from(note.data, note.encoding === 'base64' ? 'base64' : 'utf-8');
}

export interface StateNote {
  subscription: string;
  job: Job;
  final: boolean;
}

/** An error the daemon answered (its JSON-RPC code and message), or a lost connection. */
export class KitplayError extends Error {
  constructor(message: string, readonly code: number, readonly data?: unknown) {
    super(message);
    this.name = 'KitplayError';
  }
}

/** The client-side code for "no daemon" (daemon/protocol/errors.py: DaemonUnreachable). */
export const UNREACHABLE = -32099;

/** The daemon's socket, found as kitplayd finds it. */
export function socketPath(configured?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (configured) {
    return configured;
  }
  if (env.KITPLAY_SOCKET) {
    return env.KITPLAY_SOCKET;
  }
  if (env.XDG_RUNTIME_DIR) {
    return path.join(env.XDG_RUNTIME_DIR, 'kitplay', 'kitplayd.sock');
  }
  return `/tmp/kitplay-${os.userInfo().uid}/kitplayd.sock`;
}

/** `data.reason` of the KitplayError for a socket another user may have put in our path. */
export const UNTRUSTED = 'untrusted';

function refuse(socket: string, why: string): KitplayError {
  return new KitplayError(
    `refusing to connect to ${socket}: ${why}. Another user may have put it there to catch ` +
    "kitplay's requests: remove it (as root or that user), or set XDG_RUNTIME_DIR or " +
    '`kitplay.socket` to a path of your own', UNREACHABLE, { socket, reason: UNTRUSTED });
}

function noDaemon(socket: string, e: NodeJS.ErrnoException): KitplayError {
  return new KitplayError(
    `no kitplay daemon is listening on ${socket} (${e.code ?? e.message}); start it with ` +
    '`kitplayd`', UNREACHABLE, { socket });
}

/**
 * Throw unless `socket` can only have been made by this user; called before connecting.
 *
 * The Python clients ask the kernel who serves the socket (SO_PEERCRED, in
 * daemon/protocol/paths.py check_peer); node has no API for that, so this checks what `lstat`
 * can tell, by the rules paths.py's ensure_private_dir applies to the socket's directory:
 * the directory is a real directory (not a symlink) that is either root's and sticky (/tmp
 * itself, where nobody can replace another's file) or ours and closed to others (0700, as
 * kitplayd leaves it), and the socket itself is a socket that belongs to us. In such a
 * directory nobody else can swap the socket between this check and the connect.
 */
export function checkSocket(socket: string, uid: number = os.userInfo().uid): void {
  const dir = path.dirname(socket);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    throw noDaemon(socket, e as NodeJS.ErrnoException);
  }
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw refuse(socket, `its directory ${dir} is ` +
                 (st.isSymbolicLink() ? 'a symlink' : 'not a directory'));
  }
  const sharedSticky = st.uid === 0 && (st.mode & 0o1000) !== 0; // S_ISVTX: sticky
  if (!sharedSticky) {
    if (st.uid !== uid) {
      throw refuse(socket, `its directory ${dir} belongs to another user (uid ${st.uid}), ` +
                   `not to you (uid ${uid})`);
    }
    if ((st.mode & 0o077) !== 0) {
      throw refuse(socket, `its directory ${dir} is open to others (mode ` +
                   `${(st.mode & 0o7777).toString(8)}, not 700)`);
    }
  }
  let ss: fs.Stats;
  try {
    ss = fs.lstatSync(socket);
  } catch (e) {
    throw noDaemon(socket, e as NodeJS.ErrnoException);
  }
  if (!ss.isSocket()) {
    throw refuse(socket, ss.isSymbolicLink() ? 'it is a symlink' : 'it is not a socket');
  }
  if (ss.uid !== uid) {
    throw refuse(socket, `it belongs to another user (uid ${ss.uid}), not to you (uid ${uid})`);
  }
}

function openSocket(socket: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    checkSocket(socket); // throws before anything is connected or sent (rejects the promise)
    const s = net.createConnection(socket);
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e: NodeJS.ErrnoException) => reject(noDaemon(socket, e)));
  });
}

/** One connection to kitplayd. */
export class KitplayClient {
  private closedWhy: string | undefined;
  private readonly outputHandlers = new Map<string, (note: OutputNote) => void>();
  private readonly stateHandlers = new Map<string, (note: StateNote) => void>();
  private readonly closeHandlers: Array<(why: string) => void> = [];
  // Notifications of a subscription whose id this side does not know yet (at most a few).
  private readonly early = new Map<string, Array<() => void>>();

  private constructor(readonly socket: string, private readonly sock: net.Socket,
                      readonly connection: MessageConnection) {
    connection.onNotification('jobs.output', (note: OutputNote) => {
      const h = this.outputHandlers.get(note.subscription);
      if (h) {
        h(note);
      } else {
        this.keepEarly(note.subscription, () => this.outputHandlers.get(note.subscription)?.(note));
      }
    });
    connection.onNotification('jobs.state', (note: StateNote) => {
      const h = this.stateHandlers.get(note.subscription);
      if (h) {
        h(note);
      } else {
        this.keepEarly(note.subscription, () => this.stateHandlers.get(note.subscription)?.(note));
      }
    });
    connection.onClose(() => this.lost('the daemon closed the connection'));
    connection.onError(([e]) => this.lost(`connection error: ${e.message}`));
    sock.on('error', (e) => this.lost(`socket error: ${e.message}`));
    connection.listen();
  }

  static async connect(socket: string = socketPath()): Promise<KitplayClient> {
    const sock = await openSocket(socket);
    const connection = createMessageConnection(
      new SocketMessageReader(sock, 'utf-8'), new SocketMessageWriter(sock, 'utf-8'));
    return new KitplayClient(socket, sock, connection);
  }

  private keepEarly(subscription: string, replay: () => void): void {
    const list = this.early.get(subscription) ?? [];
    if (list.length < 64) {
      list.push(replay);
      this.early.set(subscription, list);
    }
  }

  get closed(): boolean {
    return this.closedWhy !== undefined;
  }

  onClose(handler: (why: string) => void): void {
    this.closeHandlers.push(handler);
  }

  private lost(why: string): void {
    if (this.closedWhy !== undefined) {
      return;
    }
    this.closedWhy = why;
    for (const h of this.closeHandlers) {
      h(why);
    }
  }

  /**
   * Call a method: its result, or a KitplayError with the code the daemon answered. A
   * `token` that fires sends `$/cancelRequest`: the daemon ends the call (-32800) and frees
   * its slot.
   */
  async call<T = unknown>(method: string, params?: Record<string, unknown>,
                          token?: CancellationToken): Promise<T> {
    if (this.closedWhy !== undefined) {
      throw new KitplayError(`lost the connection to kitplayd on ${this.socket}: ` +
                             this.closedWhy, UNREACHABLE);
    }
    try {
      // A token only when there is one: vscode-jsonrpc would send an `undefined` as a
      // second by-position parameter.
      return await (token ? this.connection.sendRequest<T>(method, params ?? {}, token)
        : this.connection.sendRequest<T>(method, params ?? {}));
    } catch (e) {
      if (e instanceof ResponseError) {
        throw new KitplayError(e.message, e.code, e.data);
      }
      throw new KitplayError(`${method}: ${(e as Error).message}`, UNREACHABLE);
    }
  }

  status(): Promise<Record<string, unknown>> {
    return this.call('daemon.status');
  }

  async jobs(limit = 100): Promise<Job[]> {
    return (await this.call<{ jobs: Job[] }>('jobs.list', { limit })).jobs;
  }

  async apps(): Promise<App[]> {
    return (await this.call<{ apps: App[] }>('apps.list')).apps;
  }

  async launch(app: string, args: string[] = []): Promise<Job> {
    return (await this.call<{ job: Job }>('launch', { app, args })).job;
  }

  async build(app?: string): Promise<Job> {
    return (await this.call<{ job: Job }>('build', app ? { app } : {})).job;
  }

  async cancel(jobId: string): Promise<Job> {
    return (await this.call<{ job: Job }>('jobs.cancel', { job_id: jobId })).job;
  }

  /**
   * Subscribe to a job from `offset`: `onOutput` gets each chunk of its log, `onState` each
   * change of its record. Resolves with the subscription id; `ended` resolves with the final
   * record (or rejects when the connection is lost first).
   */
  async subscribe(jobId: string, offset: number, onOutput: (note: OutputNote) => void,
                  onState: (note: StateNote) => void = () => undefined,
                  encoding: LogEncoding = 'auto'):
      Promise<{ subscription: string; ended: Promise<Job> }> {
    let resolveEnd!: (job: Job) => void;
    let rejectEnd!: (e: Error) => void;
    const ended = new Promise<Job>((res, rej) => {
      resolveEnd = res;
      rejectEnd = rej;
    });
    ended.catch(() => undefined); // a caller that never awaits `ended` must not crash node
    // The daemon sends the subscribe answer before any notification; notifications of a
    // subscription id are routed once it is known (they are queued by the connection until
    // the answer's handler has run).
    const { subscription } = await this.call<{ subscription: string }>(
      'jobs.subscribe', { job_id: jobId, offset, encoding });
    this.outputHandlers.set(subscription, onOutput);
    this.stateHandlers.set(subscription, (note) => {
      onState(note);
      if (note.final) {
        this.outputHandlers.delete(subscription);
        this.stateHandlers.delete(subscription);
        resolveEnd(note.job);
      }
    });
    this.onClose((why) => rejectEnd(new KitplayError(why, UNREACHABLE)));
    for (const replay of this.early.get(subscription) ?? []) {
      replay();
    }
    this.early.delete(subscription);
    return { subscription, ended };
  }

  dispose(): void {
    this.lost('closed by the client');
    this.connection.dispose();
    this.sock.destroy();
  }
}

/**
 * Follow a job's log to its end, reconnecting after the daemon restarts and resuming from the
 * last byte received: nothing lost, nothing repeated. `onData` gets the log's bytes exactly
 * (decode them with a streaming TextDecoder to show them). Resolves with the final job record.
 */
export async function followLog(
  jobId: string, onData: (bytes: Buffer) => void,
  options: { socket?: string; offset?: number; retryMs?: number; signal?: AbortSignal;
             onReconnect?: () => void } = {}): Promise<Job> {
  const socket = options.socket ?? socketPath();
  let offset = options.offset ?? 0;
  let attempt = 0;
  for (;;) {
    if (options.signal?.aborted) {
      throw new KitplayError('stopped following', UNREACHABLE);
    }
    let client: KitplayClient | undefined;
    try {
      client = await KitplayClient.connect(socket);
      const { ended } = await client.subscribe(jobId, offset, (note) => {
        let data = noteBytes(note);
        if (note.offset < offset) { // a resumed chunk that overlaps: drop what we have
          data = data.subarray(offset - note.offset);
        }
        offset = note.next_offset;
        onData(data);
      });
      if (attempt > 0) {
        options.onReconnect?.();
      }
      const onAbort = () => client?.dispose();
      options.signal?.addEventListener('abort', onAbort);
      try {
        return await ended;
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
    } catch (e) {
      if (!(e instanceof KitplayError) || e.code !== UNREACHABLE ||
          (e.data as { reason?: string } | undefined)?.reason === UNTRUSTED) {
        throw e; // a real answer (e.g. no such job), or a socket we must not use
      }
    } finally {
      client?.dispose();
    }
    attempt += 1;
    await new Promise((r) => setTimeout(r, options.retryMs ?? 500));
  }
}

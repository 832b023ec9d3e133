/**
 * Test support (not a spec): runs the real `openssl` CLI asynchronously (never execFileSync:
 * a synchronous child blocks the event loop a TLS handshake in the same process needs) in a
 * scratch directory.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], options: { cwd?: string; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { cwd: options.cwd, timeout: 30_000, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(err); // ENOENT etc.
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
    // openssl subcommands may wait for stdin otherwise; it may also have exited already (EPIPE)
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

export class Scratch {
  private constructor(readonly dir: string) {}

  static async create(prefix = 'pki-test-'): Promise<Scratch> {
    return new Scratch(await fs.mkdtemp(path.join(os.tmpdir(), prefix)));
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  async write(name: string, content: string | Uint8Array): Promise<string> {
    const file = this.file(name);
    await fs.writeFile(file, content);
    return file;
  }

  read(name: string): Promise<string> {
    return fs.readFile(this.file(name), 'utf8');
  }

  openssl(args: string[], input?: string): Promise<RunResult> {
    return run('openssl', args, { cwd: this.dir, input });
  }

  /** `openssl verify [-purpose p] -CAfile ca cert`; returns the result, does not throw */
  async verify(caPem: string, certPem: string, extra: string[] = []): Promise<RunResult> {
    const id = Math.random().toString(36).slice(2);
    const ca = await this.write(`ca-${id}.pem`, caPem);
    const cert = await this.write(`cert-${id}.pem`, certPem);
    return this.openssl(['verify', ...extra, '-CAfile', ca, cert]);
  }

  /** a CSR made by `openssl req`; returns { csrPem, keyPem } */
  async csr(
    kind: 'ec' | 'rsa' | 'rsa1024' | 'ed25519',
    subject: string,
    extra: string[] = [],
  ): Promise<{ csrPem: string; keyPem: string }> {
    const id = Math.random().toString(36).slice(2);
    const keyArgs =
      kind === 'ec'
        ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
        : kind === 'rsa'
          ? ['-newkey', 'rsa:2048']
          : kind === 'rsa1024'
            ? ['-newkey', 'rsa:1024']
            : ['-newkey', 'ed25519'];
    const r = await this.openssl(['req', '-new', ...keyArgs, '-nodes', '-keyout', `key-${id}.pem`, '-out', `csr-${id}.pem`, '-subj', subject, ...extra]);
    if (r.code !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
    return { csrPem: await this.read(`csr-${id}.pem`), keyPem: await this.read(`key-${id}.pem`) };
  }

  async remove(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}

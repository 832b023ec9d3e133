import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';

/**
 * In a fresh node process: queue many tasks, let a run of major GCs pass with none alive (what
 * an idle moment or PGlite's start does), queue again, then read nextTick's feedback with
 * %DebugPrint. The four properties of its task literal must still be monomorphic (the fast,
 * inline path) with next-tick-shape loaded first; without it they turn megamorphic.
 */
describe('next-tick-shape', () => {
  let dir: string;
  let modulePath: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'next-tick-shape-'));
    const source = readFileSync(join(__dirname, 'next-tick-shape.ts'), 'utf8');
    modulePath = join(dir, 'next-tick-shape.js');
    writeFileSync(modulePath, ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function literalFeedback(loadModule: boolean): Promise<string[]> {
    const script = join(dir, `probe-${loadModule}.js`);
    writeFileSync(
      script,
      `${loadModule ? `require(${JSON.stringify(modulePath)});` : ''}
const drain = () => new Promise((resolve) => setTimeout(resolve, 20));
(async () => {
  for (let i = 0; i < 20000; i++) process.nextTick(() => {});
  await drain();
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 8; i++) gc();
    await drain();
    for (let i = 0; i < 10; i++) process.nextTick(() => {});
    await drain();
  }
  %DebugPrint(process.nextTick);
})();
`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--allow-natives-syntax', script], { maxBuffer: 16 * 1024 * 1024 });
    return stdout.split('\n').filter((l) => l.includes('DefineKeyedOwnPropertyInLiteral')).map((l) => l.replace(/.*DefineKeyedOwnPropertyInLiteral (\w+).*/, '$1'));
  }

  it('keeps the task literal monomorphic through major GCs with no task alive', async () => {
    expect(await literalFeedback(true)).toEqual(['MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC']);
  });

  it('is needed: without it the same run leaves the literal megamorphic (this V8 behaviour is why the module exists)', async () => {
    expect(await literalFeedback(false)).toContain('MEGAMORPHIC');
  });
});

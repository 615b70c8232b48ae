import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packageRoot } from '../../src/config/load.js';
import { CommandError, requireTool, run } from '../tools/exec.js';

/** Every shell script the repository holds: by extension or by its first line. */
async function shellScripts(root: string): Promise<string[]> {
  const { stdout } = await run('git', ['-C', root, 'ls-files', '--cached', '--others', '--exclude-standard']);
  const scripts: string[] = [];
  for (const file of stdout.split('\n').filter((name) => name !== '' && !name.startsWith('node_modules'))) {
    if (file.endsWith('.sh')) {
      scripts.push(file);
      continue;
    }
    const head = await readFile(join(root, file), 'utf8').then(
      (text) => text.slice(0, 64),
      () => '',
    );
    if (/^#!\s*(\/usr\/bin\/env\s+(-S\s+)?)?(\/bin\/|\/usr\/bin\/)?(ba)?sh\b/.test(head)) scripts.push(file);
  }
  return scripts;
}

describe('shell scripts', () => {
  const root = packageRoot();

  it('are shellcheck-clean, every one of them', async () => {
    await requireTool('shellcheck', 'shellcheck');
    const scripts = await shellScripts(root);
    for (const expected of ['scripts/build-deb.sh', 'scripts/lxc-create.sh', 'deploy/disk2iso', 'deploy/disk2iso-nginx', 'deploy/debian/postinst']) {
      assert.ok(scripts.includes(expected), `${expected} is among ${scripts.join(', ')}`);
    }
    const result = await run('shellcheck', ['--external-sources', ...scripts.map((script) => join(root, script))]).catch((error: unknown) => error);
    assert.ok(!(result instanceof Error), result instanceof CommandError ? `${result.message}` : String(result));
  });
});

describe('scripts/lxc-create.sh --dry-run', () => {
  const script = join(packageRoot(), 'scripts', 'lxc-create.sh');
  let work: string;
  let deb: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-lxc-'));
    deb = join(work, 'disk2iso_2.0.0_amd64.deb');
    await writeFile(deb, 'a package');
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('prints the container it would make: bookworm, the limits, the drives and the output folder, and the install', async () => {
    const { stdout } = await run('bash', [
      script,
      '--dry-run',
      '--name',
      'd2i-test',
      '--deb',
      deb,
      '--output',
      work,
      '--drive',
      '/dev/sr0',
      '--drive',
      '/dev/sr1',
      '--nginx',
    ]);
    const lines = stdout.split('\n');
    assert.ok(
      lines.some((line) => /^lxc-create -n d2i-test -t download -- -d debian -r bookworm -a \S+ ?$/.test(line)),
      stdout,
    );
    for (const setting of [
      'lxc.cgroup2.memory.max = 2G',
      'lxc.cgroup2.cpu.max = 200000 100000',
      'lxc.cgroup2.devices.allow = b 11:* r',
      'lxc.mount.entry = /dev/sr0 dev/sr0 none bind,optional,create=file',
      'lxc.mount.entry = /dev/sr1 dev/sr1 none bind,optional,create=file',
      `lxc.mount.entry = ${work} var/lib/disk2iso/output none bind,create=dir`,
    ]) {
      assert.ok(lines.includes(setting), `${setting} in:\n${stdout}`);
    }
    const install = lines.findIndex((line) => line.includes('apt-get install -y /root/disk2iso.deb'));
    assert.ok(install > lines.findIndex((line) => line.startsWith('lxc-start -n d2i-test')), stdout);
    assert.ok(
      lines.some((line) => line.trim() === 'lxc-attach -n d2i-test -- disk2iso-nginx enable'),
      stdout,
    );
  });

  it('refuses input that would end up in the configuration or a command, and does nothing', async () => {
    for (const [args, message] of [
      [['--name', 'a;b', '--deb', deb, '--output', work], /invalid --name/],
      [['--deb', deb, '--output', 'relative/isos'], /--output must be an absolute path/],
      [['--deb', deb, '--output', `${work}\nlxc.mount.entry = / x`], /--output must be an absolute path/],
      [['--deb', deb, '--output', work, '--drive', '/dev/sda'], /--drive must be an optical drive/],
      [['--deb', deb, '--output', work, '--memory', '2G; rm'], /invalid --memory/],
      [['--deb', join(work, 'missing.deb'), '--output', work], /no such package/],
    ] as const) {
      const failure = await run('bash', [script, '--dry-run', ...args]).then(
        () => null,
        (error: unknown) => error,
      );
      assert.ok(failure instanceof CommandError, `${args.join(' ')} was accepted`);
      assert.equal(failure.exitCode, 2);
      assert.match(failure.stderr, message);
    }
  });
});

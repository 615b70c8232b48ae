import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, chown, cp, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packageRoot } from '../../src/config/load.js';
import { CommandError, requireTool, run } from '../tools/exec.js';

/** The smallest Debian base the package's scripts need: root, and the group cdrom (gid 24 as in base-passwd). */
const BASE_FILES: Record<string, string> = {
  'etc/passwd': 'root:x:0:0:root:/root:/bin/bash\n',
  'etc/group': 'root:x:0:\ncdrom:x:24:\n',
  'etc/shadow': 'root:*:19000:0:99999:7:::\n',
  'etc/gshadow': 'root:*::\ncdrom:*::\n',
  'var/lib/dpkg/status': '',
  'var/lib/dpkg/available': '',
};

interface Account {
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

async function accountIn(target: string, name: string): Promise<Account | null> {
  const line = (await readFile(join(target, 'etc/passwd'), 'utf8')).split('\n').find((entry) => entry.startsWith(`${name}:`));
  if (!line) return null;
  const [, , uid, gid, , home, shell] = line.split(':');
  return { uid: Number(uid), gid: Number(gid), home: home ?? '', shell: shell ?? '' };
}

async function groupMembers(target: string, name: string): Promise<string[]> {
  const line = (await readFile(join(target, 'etc/group'), 'utf8')).split('\n').find((entry) => entry.startsWith(`${name}:`));
  return (line?.split(':')[3] ?? '').split(',').filter((member) => member !== '');
}

async function modeOf(path: string): Promise<{ mode: number; uid: number; gid: number }> {
  const info = await stat(path);
  return { mode: info.mode & 0o7777, uid: info.uid, gid: info.gid };
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

describe('the Debian package: install into a root, the unit, upgrade, remove, purge', () => {
  const root = packageRoot();
  let work: string;
  let target: string;
  let first: string;
  let second: string;

  /** dpkg on the test's root; the scripts run on the host's tools with DPKG_ROOT set, the root has no packages for the dependencies. */
  const dpkg = (...args: string[]) =>
    run('dpkg', [`--root=${target}`, '--force-script-chrootless', '--force-depends', '--force-confold', '--force-unsafe-io', ...args]);
  const build = async (version: string) =>
    (await run('bash', [join(root, 'scripts', 'build-deb.sh'), '--no-build', '--fast', '--out', work, '--version', version])).stdout.trim();

  before(async () => {
    for (const [tool, debianPackage] of [
      ['dpkg-deb', 'dpkg'],
      ['systemd-analyze', 'systemd'],
      ['systemd-sysusers', 'systemd'],
      ['systemd-tmpfiles', 'systemd'],
      ['deb-systemd-helper', 'init-system-helpers'],
      ['nginx', 'nginx'],
      ['openssl', 'openssl'],
    ] as const)
      await requireTool(tool, debianPackage);
    work = await mkdtemp(join(tmpdir(), 'disk2iso-deb-'));
    target = join(work, 'root');
    for (const dir of ['var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'etc']) await mkdir(join(target, dir), { recursive: true });
    for (const [file, content] of Object.entries(BASE_FILES)) await writeFile(join(target, file), content, { mode: file.includes('shadow') ? 0o640 : 0o644 });
    first = await build('2.0.0~test1');
    second = await build('2.0.0~test2');
  });

  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('installs: a system user in cdrom, code under /opt, configuration 0600, data under /var/lib, the unit enabled', async () => {
    await dpkg('-i', first);
    const account = await accountIn(target, 'disk2iso');
    assert.ok(account, 'the user disk2iso exists');
    assert.ok(account.uid > 0 && account.uid < 1000, `a system uid: ${account.uid}`);
    assert.equal(account.home, '/var/lib/disk2iso');
    assert.equal(account.shell, '/usr/sbin/nologin');
    assert.deepEqual(await groupMembers(target, 'cdrom'), ['disk2iso'], 'may read /dev/sr*');

    const service = { uid: account.uid, gid: account.gid };
    assert.deepEqual(await modeOf(join(target, 'etc/disk2iso/config.json')), { mode: 0o600, ...service });
    assert.deepEqual(await modeOf(join(target, 'etc/disk2iso')), { mode: 0o750, uid: 0, gid: account.gid });
    assert.deepEqual(await modeOf(join(target, 'var/lib/disk2iso')), { mode: 0o755, ...service });
    assert.deepEqual(await modeOf(join(target, 'var/lib/disk2iso/output')), { mode: 0o755, ...service });
    for (const program of ['opt/disk2iso/bin/disk2iso', 'opt/disk2iso/node/bin/node', 'usr/bin/disk2iso', 'usr/sbin/disk2iso-nginx']) {
      assert.deepEqual(await modeOf(join(target, program)), { mode: 0o755, uid: 0, gid: 0 }, program);
    }
    assert.ok(await exists(join(target, 'opt/disk2iso/dist/src/main.js')));
    assert.ok(await exists(join(target, 'opt/disk2iso/src/web/templates')));
    assert.ok(await exists(join(target, 'opt/disk2iso/node_modules/better-sqlite3/build/Release/better_sqlite3.node')));
    for (const left of ['opt/disk2iso/dist/test', 'opt/disk2iso/node_modules/typescript', 'opt/disk2iso/node_modules/@biomejs']) {
      assert.equal(await exists(join(target, left)), false, `${left} is not shipped`);
    }
    assert.equal(
      await readlink(join(target, 'etc/systemd/system/multi-user.target.wants/disk2iso.service')),
      '/lib/systemd/system/disk2iso.service',
      'enabled',
    );
  });

  it('runs from where it is installed: the service answers, with its pages and assets', async () => {
    const child = spawn(join(target, 'opt/disk2iso/node/bin/node'), [join(target, 'opt', 'disk2iso', 'bin', 'disk2iso'), 'serve', '--port', '0'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        DISK2ISO_CONFIG: join(target, 'etc/disk2iso/config.json'),
        DISK2ISO_DATA_DIR: join(work, 'data'),
        DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const match = /^disk2iso listening on (\S+)$/m.exec(output);
          if (match?.[1]) resolve(match[1]);
        });
        void exited.then((code) => reject(new Error(`the installed service ended (${code}) before listening:\n${output}`)));
      });
      assert.equal((await fetch(`${url}/api/v1/health`)).status, 200);
      const login = await fetch(`${url}/login`);
      assert.equal(login.status, 200);
      assert.match(await login.text(), /<form[^>]+action="\/login"/);
      assert.equal((await fetch(`${url}/static/css/app.css`)).status, 200);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0);
  });

  it('gives root a disk2iso command whose files in the data dir stay the service’s, and that writes elsewhere as root', async () => {
    const account = await accountIn(target, 'disk2iso');
    assert.ok(account);
    // The service user must reach the configuration and a data dir of its own inside the test's folder.
    await chmod(work, 0o711);
    const dataDir = join(work, 'command-data');
    await mkdir(dataDir);
    await chown(dataDir, account.uid, account.gid);
    // In a mount namespace of its own, the installed /opt and the root's users stand where the command expects them.
    const inInstallation = (...args: string[]) =>
      run(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          '--',
          'sh',
          '-c',
          'root=$1; shift; mount --bind "$root/opt" /opt && mount --bind "$root/etc/passwd" /etc/passwd && mount --bind "$root/etc/group" /etc/group && exec "$root/usr/bin/disk2iso" "$@"',
          'sh',
          target,
          ...args,
        ],
        { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DISK2ISO_CONFIG: join(target, 'etc/disk2iso/config.json'), DISK2ISO_DATA_DIR: dataDir } },
      );
    const version = (await inInstallation('--version')).stdout.trim();
    assert.equal(version, JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).version);
    assert.match((await inInstallation('user', 'list')).stdout, /No users yet/);
    const database = join(dataDir, 'disk2iso.db');
    assert.deepEqual(await modeOf(database), { mode: 0o600, uid: account.uid, gid: account.gid }, 'the database belongs to the service');
    // A backup into a folder only root may write: the command kept root's rights for it.
    const rootOnly = join(work, 'root-only');
    await mkdir(rootOnly, { mode: 0o700 });
    await inInstallation('backup', '--output', join(rootOnly, 'disk2iso_backup.tar.gz'));
    assert.equal((await modeOf(join(rootOnly, 'disk2iso_backup.tar.gz'))).uid, 0);
    assert.deepEqual(await modeOf(database), { mode: 0o600, uid: account.uid, gid: account.gid }, 'still the service’s');
  });

  it('has a unit that systemd-analyze verify passes and security rates 2.5 or lower, reading drives and writing data only', async () => {
    const unitFile = join(target, 'lib/systemd/system/disk2iso.service');
    // verify resolves the unit's dependencies (targets, slices) and its ExecStart inside the root it is given.
    const verifyRoot = join(work, 'verify');
    await cp('/lib/systemd/system', join(verifyRoot, 'lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    await cp(join(target, 'opt/disk2iso/bin/disk2iso'), join(verifyRoot, 'opt/disk2iso/bin/disk2iso'));
    const verify = async (): Promise<string> => {
      try {
        const { stdout, stderr } = await run('systemd-analyze', ['verify', `--root=${verifyRoot}`, '--man=no', 'disk2iso.service']);
        return `${stdout}${stderr}`;
      } catch (error) {
        return error instanceof CommandError ? `exit ${error.exitCode}: ${error.stderr}` : String(error);
      }
    };
    const unit = await readFile(unitFile, 'utf8');
    await writeFile(join(verifyRoot, 'lib/systemd/system/disk2iso.service'), unit);
    assert.equal(await verify(), '', 'verify is clean');
    await writeFile(join(verifyRoot, 'lib/systemd/system/disk2iso.service'), unit.replace('DevicePolicy=closed', 'DevicePolicy=closd'));
    assert.match(await verify(), /device policy/i, 'and it does complain about a broken unit');

    const { stdout } = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', unitFile]);
    const exposure = /Overall exposure level for disk2iso\.service: (\d+\.\d+)/.exec(stdout);
    assert.ok(exposure?.[1], stdout);
    assert.ok(Number(exposure[1]) <= 2.5, `exposure ${exposure[1]}:\n${stdout}`);

    const settings = (key: string): string[] => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((match) => match[1] ?? '');
    assert.deepEqual(settings('Type'), ['notify']);
    assert.deepEqual(settings('DevicePolicy'), ['closed']);
    assert.deepEqual(settings('DeviceAllow'), ['block-sr r'], 'optical drives, read only');
    assert.deepEqual(settings('ProtectSystem'), ['strict']);
    assert.deepEqual(settings('ReadWritePaths'), ['/var/lib/disk2iso'], 'data and output only');
    assert.deepEqual(settings('StateDirectory'), ['disk2iso']);
  });

  it('puts an nginx site in place that nginx accepts, and refuses a server name that would inject configuration', async () => {
    const helper = join(target, 'usr/sbin/disk2iso-nginx');
    const certificate = join(work, 'tls.crt');
    const key = join(work, 'tls.key');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=disk2iso.test', '-days', '1', '-keyout', key, '-out', certificate]);
    await assert.rejects(run('sh', [helper, 'enable', '--root', target, '--server-name', 'x; include /etc/shadow']), /invalid --server-name/);
    assert.equal(await exists(join(target, 'etc/nginx/sites-enabled/disk2iso')), false, 'nothing written');

    await run('sh', [helper, 'enable', '--root', target, '--server-name', 'disk2iso.test', '--certificate', certificate, '--key', key]);
    const site = await readFile(join(target, 'etc/nginx/sites-enabled/disk2iso'), 'utf8');
    assert.match(site, /server_name disk2iso\.test;/);
    assert.match(site, /server unix:\/run\/disk2iso\/disk2iso\.sock;/);
    assert.match(site, new RegExp(`ssl_certificate +${certificate};`));
    assert.doesNotMatch(site, /disk2iso\.example\.org|\/etc\/ssl\/certs\/disk2iso\.crt/, 'every placeholder replaced');
    assert.ok(await exists(join(target, 'etc/nginx/conf.d/disk2iso-http.conf')), 'the http-block part (rate-limit zone, maps)');
    assert.match(
      await readFile(join(target, 'etc/systemd/system/disk2iso.service.d/nginx.conf'), 'utf8'),
      /^Environment=DISK2ISO_SERVER_SOCKET=\/run\/disk2iso\/disk2iso\.sock$/m,
    );
    const nginxConf = join(work, 'nginx.conf');
    await writeFile(
      nginxConf,
      `pid ${join(work, 'nginx.pid')};\nevents {}\nhttp {\n  access_log off;\n  include ${join(target, 'etc/nginx/conf.d')}/*.conf;\n  include ${join(target, 'etc/nginx/sites-enabled')}/*;\n}\n`,
    );
    await run('nginx', ['-t', '-q', '-e', 'stderr', '-c', nginxConf]);
  });

  it('upgrades keeping a changed configuration and the data; removing keeps both; purging keeps the data and the user', async () => {
    const config = join(target, 'etc/disk2iso/config.json');
    const changed = '{ "server": { "host": "127.0.0.1", "port": 8181 } }\n';
    await writeFile(config, changed);
    const image = join(target, 'var/lib/disk2iso/output/KEEP.iso');
    await writeFile(image, 'an image');
    const account = await accountIn(target, 'disk2iso');
    assert.ok(account);

    await dpkg('-i', second);
    assert.match((await dpkg('-s', 'disk2iso')).stdout, /^Version: 2\.0\.0~test2$/m);
    assert.equal(await readFile(config, 'utf8'), changed, 'the admin’s configuration stays');
    assert.deepEqual(await modeOf(config), { mode: 0o600, uid: account.uid, gid: account.gid });
    assert.equal(await readFile(image, 'utf8'), 'an image');
    assert.deepEqual(await accountIn(target, 'disk2iso'), account, 'the same user');

    await dpkg('-r', 'disk2iso');
    assert.equal(await exists(join(target, 'opt/disk2iso')), false, 'the code is gone');
    assert.equal(await exists(join(target, 'usr/bin/disk2iso')), false);
    assert.equal(await readFile(config, 'utf8'), changed, 'remove keeps the configuration');
    assert.equal(await readFile(image, 'utf8'), 'an image', 'and the data');
    assert.equal(await readlink(join(target, 'etc/systemd/system/disk2iso.service')), '/dev/null', 'masked, so nothing starts what is gone');

    await dpkg('-P', 'disk2iso');
    assert.equal(await exists(join(target, 'etc/disk2iso')), false, 'purge removes the configuration');
    assert.equal(await exists(join(target, 'etc/nginx/sites-enabled/disk2iso')), false, 'and the nginx site');
    assert.equal(await exists(join(target, 'etc/systemd/system/disk2iso.service.d')), false, 'and its drop-in');
    assert.equal(await exists(join(target, 'etc/systemd/system/disk2iso.service')), false, 'and the mask');
    assert.equal(await readFile(image, 'utf8'), 'an image', 'the images stay');
    assert.ok(await exists(join(target, 'var/lib/disk2iso/output')));
    assert.deepEqual(await accountIn(target, 'disk2iso'), account, 'and the user');
    assert.deepEqual(await readdir(join(target, 'var/lib/dpkg/info')).then((files) => files.filter((file) => file.startsWith('disk2iso'))), []);
  });
});

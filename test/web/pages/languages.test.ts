import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EnqueueInput } from '../../../src/jobs/queue.js';
import { type Language, allCatalogs } from '../../../src/web/i18n.js';
import { testDriveId } from '../../support/database.js';
import { type MadeIso, makeIso } from '../../tools/iso.js';
import { type TestDisc, insertTestDisc } from '../support/discs.js';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

/** What a catalog key looks like (`archive.detail.title`): such a text on a page is a key nobody translated. */
const KEY_PATTERN = /^[a-z_]+(?:\.[a-z0-9_-]+)+$/;
/** Attributes people read (or hear, from a screen reader). */
const READ_ATTRIBUTES = ['placeholder', 'title', 'aria-label', 'alt'];

function decode(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#x27;/g, "'")
    .replace(/&amp;/g, '&');
}

/** The texts a reader sees on a page: text nodes and the readable attributes, whitespace collapsed. */
function readableTexts(html: string): string[] {
  const body = html
    .replace(/<script\b[\s\S]*?<\/script>/g, ' ')
    .replace(/<style\b[\s\S]*?<\/style>/g, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ');
  const texts: string[] = [];
  for (const match of body.matchAll(/>([^<]+)</g)) texts.push(match[1] as string);
  for (const attribute of READ_ATTRIBUTES) for (const match of body.matchAll(new RegExp(`\\s${attribute}="([^"]*)"`, 'g'))) texts.push(match[1] as string);
  return texts.map((text) => decode(text).replace(/\s+/g, ' ').trim()).filter((text) => text !== '');
}

/** Words of lower-case letters: an English sentence has several; names, paths, ids and checksums have none. */
function lowerCaseWords(text: string): number {
  return text.split(' ').filter((word) => /^\p{Ll}+[.,;:!?]?$/u.test(word) && word.length > 1).length;
}

describe('every page in Spanish, French and German shows no catalog key and no English sentence', () => {
  let server: WebTestServer;
  let scratch: string;
  let disc: TestDisc;
  /** A disc of which no sector can be read: its drive's probe fails with media_unreadable. */
  let unreadable: TestDisc;
  let imageFile: MadeIso;
  const urls: Array<[string, string]> = [];
  /** The drives' ids: a cluster node's (`vm.loop3`) look like a catalog key and are none. */
  const driveIds = new Set<string>();

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'disk2iso-languages-'));
    disc = await insertTestDisc({ dir: scratch, label: 'HOLIDAY_2024' });
    unreadable = await insertTestDisc({ dir: scratch, label: 'SCRATCHED_CD', dataMiB: 1, seed: 2, badRanges: [[0, 1 << 30]] });
    imageFile = await makeIso({ dir: scratch, label: 'PHOTOS_2019', dataMiB: 1, files: 2, seed: 3 });
    server = await startWebTestServer({ listen: false, devices: [disc.loop.path, unreadable.loop.path, imageFile.path] });
    // Until its probe has failed the drive shows "being checked"; the pages are to show the failure.
    for (;;) {
      const listed = await server.send('GET', '/api/v1/devices', { json: true });
      const devices = (JSON.parse(listed.body) as { devices: Array<{ id: string; media_state: string }> }).devices;
      if (devices.find((device) => device.id === testDriveId(unreadable.loop.name))?.media_state === 'failed') {
        for (const device of devices) driveIds.add(device.id);
        break;
      }
      await sleep(100);
    }
    const output = server.config.storage.output_dir;
    await mkdir(output, { recursive: true });

    // A job reading with unreadable sectors, one waiting, one cancelled.
    const enqueue = (name: string, claim?: EnqueueInput['claim']) =>
      server.queue.enqueue({
        name,
        deviceId: testDriveId(disc.loop.name),
        devicePath: disc.loop.path,
        outputFile: join(output, `${name}.iso`),
        sizeBytes: 700_000_000,
        options: { read_attempts: 2, verify: true, checksums: ['md5', 'sha256'], disc: { label: name, kind: 'data', sector_size: 2048 } },
        ...(claim === undefined ? {} : { claim }),
      });
    const running = await enqueue('HOLIDAY_2024', { workerId: 'test-worker', leaseMs: 600_000 });
    await server.queue.update(running.id, 'test-worker', {
      phase: 'retrying',
      progress: 42.5,
      bytesDone: 297_500_000,
      speedBps: 2_450_000,
      etaSeconds: 263,
      badBytes: 4096,
    });
    // Its rescue map, so the sector map and its legend are on the page: read, bad, not tried yet.
    await writeFile(
      join(output, 'HOLIDAY_2024.iso.map'),
      '# Mapfile\n0x10001000 ? 1\n0x00000000 0x10000000 +\n0x10000000 0x00001000 -\n0x10001000 0x19B91700 ?\n',
    );
    const waiting = await enqueue('BACKUP_DVD');
    const cancelled = await server.queue.requestStop((await enqueue('SCRATCHED')).id, 'cancel');

    // An image in the archive, with its checksum file.
    const path = join(output, 'MOVIES_1999.iso');
    const content = Buffer.alloc(2048 * 16, 7);
    await writeFile(path, content);
    const md5 = createHash('md5').update(content).digest('hex');
    await writeFile(`${path}.md5`, `${md5}  MOVIES_1999.iso\n`);
    const archive = await server.archiveRepository.create({
      filename: 'MOVIES_1999.iso',
      path,
      sizeBytes: content.length,
      checksums: { md5 },
      metadata: { tags: ['dvd'] },
      source: {
        deviceId: 'sr0',
        devicePath: '/dev/sr0',
        discKind: 'dvd-video',
        volumeLabel: 'MOVIES_1999',
        volumeId: 'MOVIES_1999',
        mediaType: 'dvd',
        fileSystems: ['iso9660'],
      },
    });

    // A verification in its history.
    await server.archives.startVerification(archive.id, 'admin-user');
    while ((await server.archives.verifications(archive.id, { limit: 1, offset: 0 })).total === 0) await sleep(100);

    urls.push(
      ['dashboard', '/'],
      ['finished jobs', '/?tab=finished'],
      ['dashboard with a notice', '/?notice=job_created'],
      ['dashboard with an error', '/?error=no_media'],
      ['new job', '/jobs/new'],
      ['job detail', `/jobs/${running.id}`],
      ['waiting job', `/jobs/${waiting.id}`],
      ['cancelled job', `/jobs/${cancelled.id}`],
      ['cancel dialog', `/jobs/${running.id}/cancel`],
      ['job fragment', `/jobs/${running.id}/live`],
      ['dashboard fragment', '/fragments/dashboard'],
      ['drives', '/drives'],
      ['archive', '/archive'],
      ['archive as a table', '/archive?view=table'],
      ['archive search without a match', '/archive?q=nothing-like-this'],
      ['archive detail', `/archive/${archive.id}`],
      ['archive delete', `/archive/${archive.id}/delete`],
      ['categories', '/archive/categories'],
      ['catalogue import', '/archive/import'],
      ['adoption', '/archive/adopt'],
      ['settings', '/config'],
      ['password', '/account/password'],
      ['API keys', '/account/api-keys'],
      ['users', '/users'],
      ['user delete', '/users/viewer-user/delete'],
      ['audit log', '/audit'],
      ['page not found', '/no-such-page'],
      ['job not found', '/jobs/job_missing'],
    );
  });

  after(async () => {
    await server?.close();
    await disc?.release();
    await unreadable?.release();
    await rm(scratch, { recursive: true, force: true });
  });

  async function page(url: string, language: Language, signedIn = true): Promise<string> {
    const answer = await server.send('GET', url, { cookie: `lang=${language}`, ...(signedIn ? {} : { session: null }) });
    assert.ok([200, 404, 409].includes(answer.status), `${url} in ${language} answered ${answer.status}: ${answer.body.slice(0, 300)}`);
    return answer.body;
  }

  for (const language of ['es', 'fr', 'de'] as const) {
    it(`in ${language}`, async () => {
      const catalogs = allCatalogs();
      const { en } = catalogs;
      const translated = catalogs[language];
      // English texts of the catalog this language words differently, of more than a couple of words.
      const english = new Set([...en].filter(([key, text]) => translated.get(key) !== text && text.split(/\s+/).length > 2).map(([, text]) => text));
      const problems: string[] = [];
      const pages: Array<[string, string, boolean]> = [
        ...urls.map(([name, url]): [string, string, boolean] => [name, url, true]),
        ['sign-in', '/login', false],
        ['setup link', '/setup?token=not-a-real-token-at-all', false],
      ];
      for (const [name, url, signedIn] of pages) {
        const html = await page(url, language, signedIn);
        // Fragments (the live parts the scripts fetch) come without the layout.
        if (!url.endsWith('/live') && !url.startsWith('/fragments/'))
          assert.match(html, new RegExp(`<html lang="${language}"`), `${name} is not in ${language}`);
        // The same page in English: a text that reads the same there and here is English left in the page.
        const englishTexts = new Set(readableTexts(await page(url, 'en', signedIn)));
        for (const text of readableTexts(html)) {
          if (KEY_PATTERN.test(text) && !driveIds.has(text)) problems.push(`${name} (${url}) shows the key ${text}`);
          else if (english.has(text)) problems.push(`${name} (${url}) shows the English "${text}"`);
          else if (lowerCaseWords(text) > 2 && englishTexts.has(text)) problems.push(`${name} (${url}) shows "${text}" as in English`);
        }
      }
      assert.deepEqual(problems, []);
    });
  }

  it('names drives and where a fixed setting comes from in the reader’s language', async () => {
    const drives = await page('/drives', 'es');
    assert.ok(drives.includes(`Dispositivo loop ${disc.loop.path} (archivo de respaldo ${disc.iso.path})`), `the loop device, described in Spanish`);
    assert.ok(drives.includes(`Archivo de imagen ${imageFile.path}`), 'the image file, described in Spanish');
    assert.ok(drives.includes('El disco de esta unidad no se puede leer.'), 'the failed probe, explained in Spanish');
    const settings = await page('/config', 'fr');
    assert.ok(settings.includes('Défini par la variable d’environnement DISK2ISO_IMAGING_MAP_SAVE_INTERVAL_SECONDS ; modifiez-le à cet endroit.'));
  });

  it('writes counts with the language’s plural forms and numbers and dates in its own way', async () => {
    const archive = await page('/archive', 'fr');
    assert.match(archive, /Affichage de 1 à 1 sur 1 élément</);
    const archiveEs = await page('/archive', 'es');
    assert.match(archiveEs, /Mostrando 1–1 de 1 elemento</);
    assert.match(archiveEs, /32,8 kB/, 'a size with a decimal comma');
    const today = new Intl.DateTimeFormat('es-ES', { day: 'numeric', month: 'short', year: 'numeric' }).format(new Date());
    assert.ok(archiveEs.includes(today), `the date as ${today}`);
    assert.doesNotMatch(archiveEs, /\b\d{1,2}\/\d{1,2}\/\d{4}\b/, 'no date with the month as a number');
    const url = (name: string) => urls.find(([each]) => each === name)?.[1] ?? '';
    assert.match(await page(url('job detail'), 'fr'), /Chaque case représente /, 'the sector map is shown');
    assert.match(await page(url('archive detail'), 'es'), />Coincide</, 'the verification history is shown');
    const job = await page('/', 'de');
    assert.match(job, /42,5\s%/);
    assert.match(job, /297,5 MB \/ 700 MB/);
  });
});

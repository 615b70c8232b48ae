import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../http/support.js';
import { makeIso } from '../../tools/iso.js';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

/** The dashboard's drive rows: state and text of each, by drive id. */
function driveRows(body: string): Map<string, { state: string; text: string }> {
  const rows = [...body.matchAll(/<li class="drive-row" data-drive-id="([^"]+)" data-drive-state="([a-z]+)">([\s\S]*?)<\/li>/g)];
  return new Map(
    rows.map((match) => [
      match[1] ?? '',
      {
        state: match[2] ?? '',
        text: (match[3] ?? '')
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .trim(),
      },
    ]),
  );
}

describe('the dashboard shows the drives and their state', () => {
  let work: string;
  let server: WebTestServer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-web-dashboard-drives-'));
    const disc = await makeIso({ dir: work, label: 'SHELF_DISC', dataMiB: 1, files: 1, seed: 21 });
    server = await startWebTestServer({ devices: [disc.path], listen: false });
  });
  after(async () => {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('lists each drive with its state, its disc and its automation; the live fragment is the same', async () => {
    let rows = new Map<string, { state: string; text: string }>();
    await waitFor('the drive to be probed', async () => {
      rows = driveRows((await server.send('GET', '/')).body);
      return [...rows.values()].some((row) => row.state === 'disc');
    });
    const [id, row] = [...rows][0] ?? ['', { state: '', text: '' }];
    assert.equal(rows.size, 1);
    assert.match(row.text, /Disc ready/);
    assert.match(row.text, /SHELF_DISC · Data disc · 1\.\d MB/);
    assert.match(row.text, /Automation: Do nothing/);

    const fragment = driveRows((await server.send('GET', '/fragments/dashboard')).body);
    assert.deepEqual(fragment.get(id), row);

    const viewer = driveRows((await server.send('GET', '/', { session: server.sessions.viewer })).body).get(id);
    assert.deepEqual(viewer, row, 'a viewer sees the drives as they are');
  });
});

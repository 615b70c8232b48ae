import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClusterRepository } from '../../../src/db/cluster-repository.js';
import { waitFor } from '../../http/support.js';
import { openDataDirDatabase } from '../../support/database.js';
import { makeIso } from '../../tools/iso.js';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

const SCRIPT = '<script>alert(7)</script>';

/** The Nodes section's rows: online flag and text of each, by node name. */
function nodeRows(body: string): Map<string, { online: string; text: string }> {
  const rows = [
    ...body.matchAll(
      /<li class="node-row" data-node-id="([^"]+)" data-node-online="(yes|no)">([\s\S]*?)<\/li>\s*(?=<li class="node-row"|<\/ul>\s*<\/section>)/g,
    ),
  ];
  return new Map(
    rows.map((match) => [
      match[1] ?? '',
      {
        online: match[2] ?? '',
        text: (match[3] ?? '')
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .trim(),
      },
    ]),
  );
}

describe('the system status shows the cluster nodes', () => {
  let work: string;
  let server: WebTestServer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-web-nodes-'));
    const disc = await makeIso({ dir: work, label: 'NODE_SHELF', dataMiB: 1, files: 1, seed: 41 });
    server = await startWebTestServer({ devices: [disc.path], listen: false });
  });
  after(async () => {
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('lists this node with its role, version, heartbeat and drives, and another node offline with its version flagged, escaped', async () => {
    const database = await openDataDirDatabase(server.config.data_dir);
    try {
      const repository = createClusterRepository(database);
      await repository.register({
        id: 'tower-old',
        role: 'worker',
        version: `1.9.0${SCRIPT}`,
        hostname: SCRIPT,
        pid: 77,
        startedAt: '2000-01-01T00:00:00.000Z',
        internalUrl: null,
      });
      // A heartbeat stamped long ago: the node stopped answering since.
      await repository.heartbeat(
        'tower-old',
        [{ deviceId: 'sr0', path: '/dev/sr0', label: SCRIPT, state: { media: 'probed', present: true, label: SCRIPT, error: null, checkedAt: null } }],
        new Date('2000-01-01T00:00:05.000Z'),
      );
      let rows = new Map<string, { online: string; text: string }>();
      const own = server.config.cluster.node_name;
      await waitFor('this node with its disc', async () => {
        rows = nodeRows((await server.send('GET', '/')).body);
        return rows.get(own)?.text.includes('NODE_SHELF') === true;
      });
      const page = (await server.send('GET', '/')).body;
      assert.ok(!page.includes(SCRIPT), 'a <script> from another node reached the page unescaped');
      assert.match(page, /<h3 id="nodes-heading">Nodes<\/h3>/);
      assert.equal(rows.size, 2);
      assert.equal(rows.get(own)?.online, 'yes');
      assert.match(
        rows.get(own)?.text ?? '',
        /^\S+ Online Web and drives · .+ · last heartbeat \d+ s ago Version test (?:[a-z0-9-]+\.)?file-\S+ · \/tmp\/\S+\.iso · checked · NODE_SHELF$/,
      );
      const old = rows.get('tower-old');
      assert.equal(old?.online, 'no');
      assert.match(old?.text ?? '', /^tower-old Offline Drives only · &lt;script&gt;alert\(7\)&lt;\/script&gt; · last heartbeat [\d,.]+ s ago/);
      assert.match(old?.text ?? '', /Version 1\.9\.0&lt;script&gt;.* · another version than this node/);
      assert.match(page, /class="node-version-mismatch"/);

      const fragment = nodeRows((await server.send('GET', '/fragments/dashboard')).body);
      assert.deepEqual([...fragment.keys()], [...rows.keys()], 'the live fragment shows them too');
      const viewer = nodeRows((await server.send('GET', '/', { session: server.sessions.viewer })).body);
      assert.deepEqual([...viewer.keys()], [...rows.keys()], 'a viewer reads the system status, the nodes with it');
      await repository.remove('tower-old');
    } finally {
      await database.close();
    }
  });
});

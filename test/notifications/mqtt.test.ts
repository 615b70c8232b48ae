import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { testEnv, waitFor } from '../http/support.js';
import { createTestDataDir, removeTestDataDir, testDriveId } from '../support/database.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type MadeIso, makeIso } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { type Mosquitto, type Observer, type ReceivedMessage, observe, startMosquitto } from '../tools/mosquitto.js';
import { serve } from '../tools/serve.js';
import { type WebTestServer, startWebTestServer } from '../web/support/server.js';

const SERVICE = { username: 'disk2iso', password: 'Service-Pass-1' };
const HOME_ASSISTANT = { username: 'home', password: 'Home-Pass-2' };
const PREFIX = 'd2i';

interface StatePayload {
  state: string;
  progress: number;
  label: string;
  rate: number;
  job: string | null;
}

const states = (messages: ReceivedMessage[]): StatePayload[] =>
  messages.filter((message) => message.payload !== '').map((message) => JSON.parse(message.payload));

/**
 * The MQTT channel against Debian's mosquitto (no anonymous clients, users from mosquitto_passwd)
 * and a real service imaging a loop device; an observer client subscribes as Home Assistant would.
 */
describe('MQTT with Home Assistant discovery, against mosquitto', () => {
  let work: string;
  let broker: Mosquitto;
  let iso: MadeIso;
  let fault: FaultFs;
  let loop: LoopDevice;
  let server: WebTestServer;
  let key: string;
  let home: Observer;

  const apiCall = async (method: 'GET' | 'PATCH' | 'POST', url: string, payload?: object) => {
    const response = await server.app.inject({ method, url, headers: { 'x-api-key': key }, ...(payload === undefined ? {} : { payload }) });
    return { status: response.statusCode, body: response.json() as Record<string, unknown> };
  };
  const mqttStatus = async () => (await apiCall('GET', '/api/v1/notifications/mqtt')).body as { state: string; error: string | null; broker: string };
  /** The drive's id in Home Assistant's discovery topics: a cluster id's dot is an underscore there. */
  const objectId = () => testDriveId(loop.name).replaceAll('.', '_');
  const stateTopic = () => `${PREFIX}/${testDriveId(loop.name)}/state`;
  const press = async (): Promise<{ ok: boolean; code: string | null }> => {
    const resultTopic = `${PREFIX}/${testDriveId(loop.name)}/eject/result`;
    const seen = home.on(resultTopic).length;
    await home.client.publishAsync(`${PREFIX}/${testDriveId(loop.name)}/eject`, 'PRESS', { qos: 1 });
    await waitFor('the answer to the eject press', () => home.on(resultTopic).length > seen);
    return JSON.parse(home.on(resultTopic)[seen]?.payload ?? '{}');
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-mqtt-'));
    broker = await startMosquitto({ [SERVICE.username]: SERVICE.password, [HOME_ASSISTANT.username]: HOME_ASSISTANT.password });
    iso = await makeIso({ dir: work, label: 'MQTT_DISC', dataMiB: 8, files: 2, seed: 31 });
    fault = await mountFaultFs({ backingFile: iso.path });
    loop = await attachLoop(fault.file, { sectorSize: 2048 });
    server = await startWebTestServer({ devices: [loop.path] });
    key = (await server.auth.apiKeys.create({ user: 'admin-user', name: 'mqtt' }, localActor('test'))).key;
    home = await observe(broker.url, HOME_ASSISTANT, [`${PREFIX}/#`, 'homeassistant/#']);
  });

  after(async () => {
    await home?.close();
    await server?.close();
    await loop?.detach();
    await fault?.unmount();
    await broker?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('connects once an admin saves the MQTT settings on the page, and announces the drive to Home Assistant, retained', async () => {
    assert.equal((await mqttStatus()).state, 'disabled');
    const saved = await server.send('POST', '/config/mqtt', {
      form: {
        mqtt__enabled: 'on',
        mqtt__broker_url: broker.url,
        mqtt__username: SERVICE.username,
        mqtt__password: SERVICE.password,
        mqtt__client_id: '',
        mqtt__topic_prefix: PREFIX,
        mqtt__discovery_prefix: 'homeassistant',
      },
    });
    assert.equal(saved.status, 303, saved.body.slice(0, 500));
    await waitFor('the service to connect', async () => (await mqttStatus()).state === 'connected');

    // A client that subscribes now (Home Assistant after its own restart) gets everything retained.
    const late = await observe(broker.url, HOME_ASSISTANT, ['homeassistant/#', `${PREFIX}/status`, `${PREFIX}/+/state`]);
    try {
      const configTopic = (component: string, field: string) => `homeassistant/${component}/${PREFIX}/${objectId()}_${field}/config`;
      const topics = [...['state', 'progress', 'label', 'rate'].map((field) => configTopic('sensor', field)), configTopic('button', 'eject')];
      await waitFor('the discovery configurations', () => topics.every((topic) => late.on(topic).length > 0) && late.on(stateTopic()).length > 0);
      for (const topic of topics) assert.equal(late.on(topic)[0]?.retain, true, `${topic} is retained`);
      const device = { identifiers: [`${PREFIX}_${testDriveId(loop.name)}`], name: `disk2iso ${testDriveId(loop.name)}` };
      const sensor = JSON.parse(late.on(configTopic('sensor', 'state'))[0]?.payload ?? '{}');
      assert.equal(sensor.state_topic, stateTopic());
      assert.equal(sensor.value_template, '{{ value_json.state }}');
      assert.equal(sensor.unique_id, `${PREFIX}_${objectId()}_state`);
      assert.equal(sensor.availability_topic, `${PREFIX}/status`);
      assert.deepEqual({ identifiers: sensor.device.identifiers, name: sensor.device.name }, device);
      const progress = JSON.parse(late.on(configTopic('sensor', 'progress'))[0]?.payload ?? '{}');
      assert.equal(progress.unit_of_measurement, '%');
      assert.equal(progress.value_template, '{{ value_json.progress }}');
      const rate = JSON.parse(late.on(configTopic('sensor', 'rate'))[0]?.payload ?? '{}');
      assert.equal(rate.device_class, 'data_rate');
      const button = JSON.parse(late.on(configTopic('button', 'eject'))[0]?.payload ?? '{}');
      assert.equal(button.command_topic, `${PREFIX}/${testDriveId(loop.name)}/eject`);
      assert.equal(button.payload_press, 'PRESS');
      assert.deepEqual({ identifiers: button.device.identifiers, name: button.device.name }, device);
      assert.deepEqual(
        late.on(`${PREFIX}/status`).map((message) => [message.payload, message.retain]),
        [['online', true]],
      );
      const state = late.on(stateTopic())[0];
      assert.equal(state?.retain, true);
      assert.deepEqual(JSON.parse(state?.payload ?? '{}'), { state: 'disc_present', progress: 0, label: 'MQTT_DISC', rate: 0, job: null });
    } finally {
      await late.close();
    }

    // The password is write-only: never in the API's settings nor on the page.
    const shown = await apiCall('GET', '/api/v1/system/config');
    assert.equal((shown.body.settings as { mqtt: { password: string } }).mqtt.password, '********');
    const page = await server.send('GET', '/config');
    assert.ok(!page.body.includes(SERVICE.password), 'the password is not on the page');
    assert.match(page.body, /data-mqtt-status="connected"/);
    assert.match((await server.send('GET', '/config', { lang: 'de' })).body, /Verbunden mit mqtt:\/\/127\.0\.0\.1/);
  });

  it('publishes the state while a real job images the loop device, and its eject button obeys the drive-in-use rule', { timeout: 120_000 }, async () => {
    // 8 MiB at 2 MiB/s: several seconds of imaging, so progress is seen between 0 and 100.
    await fault.setRate(2 * 1024 * 1024);
    const created = await apiCall('POST', '/api/v1/jobs', { device: testDriveId(loop.name), name: 'MQTT_JOB' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const jobId = created.body.id as string;
    await waitFor('the imaging state', () => states(home.on(stateTopic())).some((state) => state.state === 'imaging' && state.job === jobId));
    await waitFor('progress between 0 and 100', () =>
      states(home.on(stateTopic())).some((state) => state.job === jobId && state.progress > 0 && state.progress < 100 && state.rate > 0),
    );
    const imaging = states(home.on(stateTopic())).find((state) => state.state === 'imaging');
    assert.equal(imaging?.label, 'MQTT_DISC');

    const busy = await press();
    assert.deepEqual([busy.ok, busy.code], [false, 'device_busy'], 'a drive a job reads from is not ejected');

    await fault.setRate(0);
    await waitFor('the job to complete', async () => (await apiCall('GET', `/api/v1/jobs/${jobId}`)).body.status === 'completed');
    await waitFor('the drive to show its disc again', () => {
      const last = states(home.on(stateTopic())).at(-1);
      return last?.state === 'disc_present' && last.job === null;
    });
    const seen = states(home.on(stateTopic())).map((state) => state.state);
    assert.ok(seen.indexOf('imaging') < seen.lastIndexOf('disc_present'), seen.join(' → '));

    // Idle now: the press reaches the drive's own eject, which a loop device has not (no tray).
    const idle = await press();
    assert.deepEqual([idle.ok, idle.code], [false, 'not_ejectable']);
  });

  it('shows a wrong password as an error status, keeps serving, and reconnects with the right one', { timeout: 60_000 }, async () => {
    const wrong = await apiCall('PATCH', '/api/v1/system/config', { mqtt: { password: 'not-the-password' } });
    assert.equal(wrong.status, 200, JSON.stringify(wrong.body));
    await waitFor('the refusal to show', async () => (await mqttStatus()).state === 'error');
    assert.match((await mqttStatus()).error ?? '', /not authori[sz]ed/i);
    const page = await server.send('GET', '/config');
    assert.match(page.body, /data-mqtt-status="error"/);
    assert.ok(!page.body.includes('not-the-password'));
    assert.equal((await apiCall('GET', '/api/v1/health')).status, 200);

    const right = await apiCall('PATCH', '/api/v1/system/config', { mqtt: { password: SERVICE.password } });
    assert.equal(right.status, 200);
    await waitFor('the service to connect again', async () => (await mqttStatus()).state === 'connected');
  });

  it('says offline and removes its entities when turned off', async () => {
    const before = home.on(`${PREFIX}/status`).length;
    await apiCall('PATCH', '/api/v1/system/config', { mqtt: { enabled: false } });
    await waitFor('offline', () =>
      home
        .on(`${PREFIX}/status`)
        .slice(before)
        .some((message) => message.payload === 'offline'),
    );
    assert.equal((await mqttStatus()).state, 'disabled');
    // Turned off, it takes its entities out of Home Assistant: an empty retained config removes one.
    const config = `homeassistant/sensor/${PREFIX}/${objectId()}_state/config`;
    await waitFor('the discovery to be removed', () => home.on(config).at(-1)?.payload === '');
  });

  it('images undisturbed while the broker takes the connection and never answers', { timeout: 120_000 }, async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const changed = await apiCall('PATCH', '/api/v1/system/config', { mqtt: { enabled: true, broker_url: `mqtt://127.0.0.1:${port}` } });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      await waitFor('the service to reach the silent broker', () => sockets.length > 0);
      const created = await apiCall('POST', '/api/v1/jobs', { device: testDriveId(loop.name), name: 'MQTT_SILENT' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      await waitFor('the job to complete', async () => (await apiCall('GET', `/api/v1/jobs/${created.body.id}`)).body.status === 'completed');
      assert.ok(['connecting', 'error'].includes((await mqttStatus()).state));
      await apiCall('PATCH', '/api/v1/system/config', { mqtt: { enabled: false } });
      await waitFor('the channel to be off', async () => (await mqttStatus()).state === 'disabled');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("leaves `offline` to the broker's last will when the service is killed", { timeout: 60_000 }, async () => {
    const dataDir = await createTestDataDir('disk2iso-mqtt-killed-');
    const topic = 'killed/status';
    const watcher = await observe(broker.url, HOME_ASSISTANT, [topic]);
    const child = serve(
      ['--port', '0'],
      testEnv(dataDir, [iso.path], {
        DISK2ISO_MQTT_ENABLED: 'true',
        DISK2ISO_MQTT_BROKER_URL: broker.url,
        DISK2ISO_MQTT_USERNAME: SERVICE.username,
        DISK2ISO_MQTT_PASSWORD: SERVICE.password,
        DISK2ISO_MQTT_CLIENT_ID: 'killed-service',
        DISK2ISO_MQTT_TOPIC_PREFIX: 'killed',
      }),
    );
    try {
      await child.address;
      await waitFor('online', () => watcher.on(topic).some((message) => message.payload === 'online'));
      child.child.kill('SIGKILL');
      await child.exited;
      await waitFor('the last will', () => watcher.on(topic).at(-1)?.payload === 'offline');
      assert.ok(!child.output().includes(SERVICE.password), 'the password is never logged');
    } finally {
      child.child.kill('SIGKILL');
      await child.exited;
      await watcher.close();
      await removeTestDataDir(dataDir);
    }
  });
});

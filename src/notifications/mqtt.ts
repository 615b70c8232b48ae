import { hostname } from 'node:os';
import { type IClientOptions, type MqttClient, connect } from 'mqtt';
import type { Config } from '../config/schema.js';
import type { DriveStates } from '../drives/state.js';
import type { Drive } from '../drives/types.js';
import { DomainError, errorMessage } from '../errors.js';
import type { JobEventBus } from '../jobs/events.js';
import { type JobRecord, isActive } from '../jobs/model.js';
import type { JsonObject } from '../json.js';
import type { LogLevel } from '../log.js';
import { maskUrlCredentials } from '../system/settings.js';

/**
 * The MQTT channel: publishes each drive's state to a broker, with Home Assistant discovery, and
 * takes eject presses from it. Nothing here is awaited by imaging or by a request: a state is read
 * from memory (the drive-state refresher's last answer, the jobs' last events) once a second and
 * published only while connected (at most once a second per drive, only when it changed); a dead or
 * slow broker costs a reconnect attempt every few seconds and nothing else.
 *
 * Topics (`P` the topic prefix, `D` the discovery prefix, `N` the node: P with `/` as `_`):
 * - `P/status`: `online`, retained; the broker's last will sets `offline` when the service dies.
 * - `P/<drive>/state`: retained JSON `{state, progress, label, rate, job}`.
 * - `P/<drive>/eject`: command topic of the eject button (payload PRESS); `P/<drive>/eject/result`
 *   answers each press with `{ok, code, message}`.
 * - `D/sensor/N/<drive>_<field>/config`, `D/button/N/<drive>_eject/config`: retained discovery.
 */

/** What a drive is doing, as the state sensor shows it. */
type DriveActivity = 'idle' | 'disc_present' | 'imaging' | 'verifying' | 'not_responding' | 'unreadable';

interface DriveStatePayload {
  state: DriveActivity;
  /** 0..100 of the running job; 0 without one. */
  progress: number;
  /** The disc's volume label; '' when there is none or no disc. */
  label: string;
  /** Read rate of the running job in MB/s (10^6 bytes), one decimal; 0 without one. */
  rate: number;
  job: string | null;
}

interface MqttStatus {
  state: 'disabled' | 'connecting' | 'connected' | 'error';
  /** The broker URL with any credentials masked; null while disabled. */
  broker: string | null;
  /** The last connection error (kept while reconnecting), or null. */
  error: string | null;
  /** When `state` last changed. */
  since: string;
}

export interface MqttChannel {
  /** Reads the active jobs and connects when MQTT is enabled; settings are looked at again every tick. */
  start(): Promise<void>;
  /** Publishes `offline` and disconnects (bounded: a broker that does not answer is dropped). */
  stop(): Promise<void>;
  status(): MqttStatus;
}

interface MqttChannelDeps {
  /** Read at every tick: a changed setting is applied within a tick, without a restart. */
  config: Config;
  drives: Pick<DriveStates, 'list' | 'peek'>;
  jobEvents: JobEventBus;
  /** The running or verifying job of each drive, read once at start (later, the job events keep them). */
  activeJobs(): Promise<Map<string, JobRecord>>;
  /** The API's eject: refuses (ConflictError `device_busy`) while a job uses the drive. */
  eject(driveId: string): Promise<unknown>;
  onEvent(level: LogLevel, message: string, details: JsonObject): void;
  version: string;
  /** Between two looks at settings and states; default 1 s. */
  tickMs?: number;
}

const DEFAULT_TICK_MS = 1000;
/** How long a stop waits for the broker to take `offline` and the disconnect. */
const STOP_TIMEOUT_MS = 2000;
const RECONNECT_PERIOD_MS = 5000;
const CONNECT_TIMEOUT_MS = 10_000;
const PRESS = 'PRESS';

type MqttSettings = Config['mqtt'];

/** Everything a connection is made from; another value means another connection. */
/** A drive's id as Home Assistant takes it in a discovery topic and a unique_id ([A-Za-z0-9_-]): a cluster id's dot (tower-a.sr0) becomes an underscore. */
function objectIdOf(driveId: string): string {
  return driveId.replaceAll('.', '_');
}

function connectionKey(settings: MqttSettings): string | null {
  if (!settings.enabled || settings.broker_url === '') return null;
  return JSON.stringify([settings.broker_url, settings.username, settings.password, settings.client_id, settings.topic_prefix, settings.discovery_prefix]);
}

/** The Home Assistant node id of this service: its topic prefix as one level. */
const nodeIdOf = (topicPrefix: string): string => topicPrefix.replaceAll('/', '_');

const activityOf = (job: JobRecord | undefined): DriveActivity | null =>
  job === undefined ? null : job.status === 'verifying' || job.phase === 'verifying' ? 'verifying' : 'imaging';

/** The drive's state from its running job, else from the refresher's last answer. */
function driveState(drive: Drive, job: JobRecord | undefined, drives: Pick<DriveStates, 'peek'>): DriveStatePayload {
  if (job !== undefined) {
    return {
      state: activityOf(job) ?? 'imaging',
      progress: Math.round(job.progress * 10) / 10,
      label: job.options.disc?.label ?? '',
      rate: job.speedBps === null ? 0 : Math.round(job.speedBps / 100_000) / 10,
      job: job.id,
    };
  }
  const known = drives.peek(drive.id);
  const idle = { progress: 0, rate: 0, job: null };
  if (known.state === 'not_responding') return { state: 'not_responding', label: '', ...idle };
  if (known.state === 'failed') return { state: 'unreadable', label: '', ...idle };
  if (known.media?.present === true) return { state: 'disc_present', label: known.media.volumeLabel ?? '', ...idle };
  return { state: 'idle', label: '', ...idle };
}

interface DiscoveryMessage {
  topic: string;
  payload: JsonObject;
}

/** The retained Home Assistant discovery configurations of one drive: four sensors and the eject button. */
function discoveryMessages(drive: Drive, settings: Pick<MqttSettings, 'topic_prefix' | 'discovery_prefix'>, version: string): DiscoveryMessage[] {
  const prefix = settings.topic_prefix;
  const node = nodeIdOf(prefix);
  const stateTopic = `${prefix}/${drive.id}/state`;
  const device = {
    identifiers: [`${node}_${drive.id}`],
    name: `disk2iso ${drive.id}`,
    model: drive.description,
    ...(drive.vendor === null ? {} : { manufacturer: drive.vendor }),
    sw_version: version,
  };
  const common = { availability_topic: `${prefix}/status`, payload_available: 'online', payload_not_available: 'offline', device };
  const sensor = (field: string, name: string, extra: JsonObject): DiscoveryMessage => ({
    topic: `${settings.discovery_prefix}/sensor/${node}/${objectIdOf(drive.id)}_${field}/config`,
    payload: {
      name,
      unique_id: `${node}_${objectIdOf(drive.id)}_${field}`,
      state_topic: stateTopic,
      value_template: `{{ value_json.${field} }}`,
      ...common,
      ...extra,
    },
  });
  return [
    sensor('state', 'State', { icon: 'mdi:disc-player' }),
    sensor('progress', 'Progress', { unit_of_measurement: '%', state_class: 'measurement', icon: 'mdi:progress-clock' }),
    sensor('label', 'Disc label', { icon: 'mdi:disc' }),
    sensor('rate', 'Read rate', { unit_of_measurement: 'MB/s', device_class: 'data_rate', state_class: 'measurement' }),
    {
      topic: `${settings.discovery_prefix}/button/${node}/${objectIdOf(drive.id)}_eject/config`,
      payload: {
        name: 'Eject',
        unique_id: `${node}_${objectIdOf(drive.id)}_eject`,
        command_topic: `${prefix}/${drive.id}/eject`,
        payload_press: PRESS,
        icon: 'mdi:eject',
        ...common,
      },
    },
  ];
}

/** One connection with the settings it was made with, and what it published. */
interface Session {
  key: string;
  settings: MqttSettings;
  client: MqttClient;
  /** The last state payload published per drive (only a change is published again). */
  published: Map<string, string>;
  /** The discovery topics published per drive, to clear them when the drive goes away. */
  discovered: Map<string, string[]>;
}

export function createMqttChannel(deps: MqttChannelDeps): MqttChannel {
  const { config, drives, jobEvents } = deps;
  const tickMs = deps.tickMs ?? DEFAULT_TICK_MS;
  const jobs = new Map<string, JobRecord>();
  const ejecting = new Set<string>();
  const unsubscribe: Array<() => void> = [];
  let session: Session | null = null;
  let timer: NodeJS.Timeout | null = null;
  let status: MqttStatus = { state: 'disabled', broker: null, error: null, since: new Date().toISOString() };

  function setStatus(state: MqttStatus['state'], error: string | null, broker = status.broker): void {
    if (state === status.state) {
      status = { ...status, broker, error };
      return;
    }
    status = { state, broker, error, since: new Date().toISOString() };
    // Transitions only: a broker that stays down is one line, not one per reconnect attempt.
    if (state === 'connected') deps.onEvent('info', `connected to the MQTT broker ${broker}`, { broker });
    if (state === 'error') deps.onEvent('warning', `the MQTT broker ${broker} refused or failed: ${error}`, { broker });
  }

  function trackJob({ job }: { job: JobRecord }): void {
    const before = jobs.get(job.deviceId);
    if (isActive(job.status)) jobs.set(job.deviceId, job);
    else if (before?.id === job.id) jobs.delete(job.deviceId);
    // A job starting, verifying or ending is published at once, so a short job is not missed between
    // two ticks; progress waits for the tick (a handful of messages per job, at most one a second).
    const after = jobs.get(job.deviceId);
    const current = session;
    if (current === null || !current.discovered.has(job.deviceId) || activityOf(before) === activityOf(after)) return;
    const drive = drives.list().find((candidate) => candidate.id === job.deviceId);
    if (drive !== undefined) publishState(current, drive);
  }

  /** Publishes only on a live connection: offline, nothing piles up, and `connect` publishes everything again. */
  function publish(current: Session, topic: string, payload: string, retain: boolean): void {
    if (!current.client.connected) return;
    current.client.publish(topic, payload, { qos: retain ? 1 : 0, retain }, (error) => {
      if (error && current === session) setStatus(status.state, errorMessage(error));
    });
  }

  function announce(current: Session, drive: Drive): void {
    const messages = discoveryMessages(drive, current.settings, deps.version);
    for (const message of messages) publish(current, message.topic, JSON.stringify(message.payload), true);
    current.discovered.set(
      drive.id,
      messages.map((message) => message.topic),
    );
  }

  /** Discovery for drives that came, cleared for drives that went, and each state that changed. */
  function publishStates(current: Session): void {
    if (!current.client.connected) return;
    const listed = drives.list();
    const ids = new Set(listed.map((drive) => drive.id));
    for (const [id, topics] of current.discovered) {
      if (ids.has(id)) continue;
      for (const topic of [...topics, `${current.settings.topic_prefix}/${id}/state`]) publish(current, topic, '', true);
      current.discovered.delete(id);
      current.published.delete(id);
    }
    for (const drive of listed) {
      if (!current.discovered.has(drive.id)) announce(current, drive);
      publishState(current, drive);
    }
  }

  function publishState(current: Session, drive: Drive): void {
    const payload = JSON.stringify(driveState(drive, jobs.get(drive.id), drives));
    if (current.published.get(drive.id) === payload) return;
    publish(current, `${current.settings.topic_prefix}/${drive.id}/state`, payload, true);
    current.published.set(drive.id, payload);
  }

  function onCommand(current: Session, topic: string, message: Buffer): void {
    const prefix = `${current.settings.topic_prefix}/`;
    if (!topic.startsWith(prefix) || !topic.endsWith('/eject')) return;
    const driveId = topic.slice(prefix.length, -'/eject'.length);
    if (message.toString('utf8') !== PRESS || !drives.list().some((drive) => drive.id === driveId) || ejecting.has(driveId)) return;
    ejecting.add(driveId);
    const answer = (result: JsonObject): void => publish(current, `${topic}/result`, JSON.stringify(result), false);
    deps
      .eject(driveId)
      .then(() => {
        deps.onEvent('info', `${driveId} ejected by its MQTT button`, { device: driveId });
        answer({ ok: true, code: null, message: `${driveId} ejected` });
      })
      .catch((error: unknown) => {
        const code = error instanceof DomainError ? error.code : 'eject_failed';
        deps.onEvent('warning', `eject of ${driveId} by its MQTT button refused: ${errorMessage(error)}`, { device: driveId, code });
        answer({ ok: false, code, message: errorMessage(error) });
      })
      .finally(() => ejecting.delete(driveId));
  }

  function open(key: string, settings: MqttSettings): Session {
    const statusTopic = `${settings.topic_prefix}/status`;
    const options: IClientOptions = {
      clientId: settings.client_id !== '' ? settings.client_id : `disk2iso-${hostname().replace(/[^A-Za-z0-9_-]/g, '_')}`,
      ...(settings.username === '' ? {} : { username: settings.username, password: settings.password }),
      will: { topic: statusTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
      reconnectPeriod: RECONNECT_PERIOD_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Offline, a state is dropped, not queued: the next connection publishes the current ones.
      queueQoSZero: false,
    };
    const client = connect(settings.broker_url, options);
    const current: Session = { key, settings, client, published: new Map(), discovered: new Map() };
    setStatus('connecting', null, maskUrlCredentials(settings.broker_url));
    client.on('connect', () => {
      if (current !== session) return;
      setStatus('connected', null);
      current.published.clear();
      current.discovered.clear();
      publish(current, statusTopic, 'online', true);
      client.subscribe(`${settings.topic_prefix}/+/eject`, { qos: 1 });
      publishStates(current);
    });
    client.on('message', (topic, message) => {
      if (current === session) onCommand(current, topic, message);
    });
    client.on('error', (error) => {
      if (current === session) setStatus('error', errorMessage(error));
    });
    client.on('close', () => {
      if (current === session && status.state === 'connected') setStatus('connecting', null);
    });
    return current;
  }

  /** Says goodbye on a live connection (`offline`; the discovery too when `clear`), then ends it within STOP_TIMEOUT_MS. */
  async function retire(old: Session, clear: boolean): Promise<void> {
    if (old.client.connected) {
      if (clear) for (const topics of old.discovered.values()) for (const topic of topics) publish(old, topic, '', true);
      publish(old, `${old.settings.topic_prefix}/status`, 'offline', true);
    }
    const ended = new Promise<void>((resolve) => old.client.end(false, {}, () => resolve()));
    const bound = new Promise<void>((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS).unref());
    await Promise.race([ended, bound]);
    old.client.end(true);
  }

  function tick(): void {
    const key = connectionKey(config.mqtt);
    if (key !== (session?.key ?? null)) {
      const old = session;
      const settings = structuredClone(config.mqtt);
      session = key === null ? null : open(key, settings);
      if (key === null) setStatus('disabled', null, null);
      if (old !== null) {
        const moved = key === null || old.settings.topic_prefix !== settings.topic_prefix || old.settings.discovery_prefix !== settings.discovery_prefix;
        void retire(old, moved);
      }
    }
    if (session !== null) publishStates(session);
  }

  return {
    async start() {
      for (const [deviceId, job] of await deps.activeJobs()) jobs.set(deviceId, job);
      unsubscribe.push(jobEvents.on('job.created', trackJob), jobEvents.on('job.updated', trackJob), jobEvents.on('job.finished', trackJob));
      tick();
      timer = setInterval(tick, tickMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      for (const off of unsubscribe.splice(0)) off();
      const old = session;
      session = null;
      setStatus('disabled', null, null);
      if (old !== null) await retire(old, false);
    },
    status: () => status,
  };
}

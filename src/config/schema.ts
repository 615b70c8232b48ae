import Type from 'typebox';

/**
 * The one configuration schema. Every layer (defaults, config file, DISK2ISO_* environment,
 * command-line flags) is validated against it, and the environment names are derived from it.
 *
 * `readOnly: true` marks a setting only the server's own configuration may set (config file,
 * environment, flags): one that names a host path, a device or a program, or that bounds what the
 * web interface and the API may do. The settings service refuses to change it at run time and
 * ignores a value of it stored in the database; docs/security.md gives the reason for each setting.
 */
export const HASH_ALGORITHMS = ['md5', 'sha1', 'sha256'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

/** The events notifications can be chosen for (notifications/model.ts holds them with the rest of that model). */
export const NOTIFICATION_EVENT_TYPES = [
  'job.queued',
  'job.started',
  'job.paused',
  'job.completed',
  'job.completed_with_errors',
  'job.failed',
  'job.cancelled',
  'service.started',
  'disc.inserted',
  'disc.removed',
  'disc.unimageable',
  'disc.waiting',
  'disc.duplicate_skipped',
  'drive.appeared',
  'drive.vanished',
  'verification.passed',
  'verification.failed',
  'storage.warning_passed',
  'storage.warning_cleared',
  'storage.stop_passed',
  'storage.stop_cleared',
] as const;

export const PRIORITIES = ['low', 'normal', 'high'] as const;
export type Priority = (typeof PRIORITIES)[number];

/**
 * Retry passes over bad sectors one run may make (0: each bad area is tried once, no retry). The
 * one declaration of the bounds: the setting, the API, the pages, the CLI and the stored job
 * options all take them from here (a retry of the bad areas raises the minimum to 1).
 */
export const READ_ATTEMPTS = { minimum: 0, maximum: 100 } as const;

const Percent = (defaultValue: number, description: string) => Type.Integer({ minimum: 1, maximum: 100, default: defaultValue, description });

const StorageSchema = Type.Object(
  {
    output_dir: Type.String({ default: '', description: 'Where finished images are written (absolute, or relative to the data dir; empty: DATA_DIR/output)' }),
    output_roots: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      readOnly: true,
      description: 'Folders besides the data dir that the output directory may be moved into at run time (web or API); set on the server only',
    }),
    warn_threshold_percent: Percent(90, 'Warn when the output file system is this full'),
    stop_threshold_percent: Percent(95, 'Pause imaging when the output file system is this full'),
    keep_partial_on_cancel: Type.Boolean({ default: false, description: 'Keep .part and map files of a cancelled job' }),
    delete_source_on_success: Type.Boolean({
      default: false,
      description: 'Eject the disc once its image is complete (every sector read) and verified (needs imaging.verify)',
    }),
    log_retention_days: Type.Integer({
      minimum: 1,
      maximum: 3650,
      default: 30,
      description: 'Days to keep job logs, the application log and finished verification tasks',
    }),
  },
  { additionalProperties: false, default: {} },
);

const ImagingSchema = Type.Object(
  {
    read_attempts: Type.Integer({ ...READ_ATTEMPTS, default: 5, description: 'Retry passes over bad sectors' }),
    sector_size: Type.Integer({ enum: [512, 2048, 4096], default: 2048, description: 'Sector size in bytes when the device does not report one' }),
    verify: Type.Boolean({ default: true, description: 'Re-read the finished image and compare its checksums' }),
    checksums: Type.Array(Type.Enum([...HASH_ALGORITHMS]), { minItems: 1, uniqueItems: true, default: ['md5', 'sha256'], description: 'Checksums to compute' }),
    priority: Type.Enum([...PRIORITIES], { default: 'normal', description: 'Default job priority' }),
    cluster_sectors: Type.Integer({
      minimum: 1,
      maximum: 1024,
      default: 32,
      description:
        "Cluster in sectors: the copy pass's smallest read (reads grow with the drive's speed up to 4 MiB) and the unit a failed read is narrowed down to",
    }),
    direct_io: Type.Enum(['auto', 'on', 'off'], { default: 'auto', description: 'Read with O_DIRECT (auto falls back to buffered reads)' }),
    map_save_interval_seconds: Type.Integer({
      minimum: 1,
      maximum: 300,
      default: 5,
      description: 'Longest time between two saves of the rescue map; a crash loses about this much reading',
    }),
  },
  { additionalProperties: false, default: {} },
);

const Hour = (defaultValue: number, description: string) => Type.Integer({ minimum: 0, maximum: 23, default: defaultValue, description });

/** Integrity over years: re-verification on a schedule, PAR2 recovery data, adopting existing images. */
const ArchiveSchema = Type.Object(
  {
    reverify_interval_days: Type.Integer({
      minimum: 0,
      maximum: 3650,
      default: 0,
      description: 'Re-hash every image when its last verification is this many days old, the longest unverified first (0: no scheduled verification)',
    }),
    reverify_window_start_hour: Hour(1, 'Scheduled verifications run from this hour (local time of the server)'),
    reverify_window_end_hour: Hour(6, 'until this hour (the same as the start: all day; a window may span midnight); a running one pauses outside it'),
    reverify_max_mib_per_second: Type.Integer({
      minimum: 0,
      maximum: 100000,
      default: 50,
      description: 'Bandwidth cap of a scheduled verification in MiB/s (0: no cap); verifications users ask for read at full speed',
    }),
    reverify_pause_while_imaging: Type.Boolean({
      default: true,
      description: 'Hold scheduled verifications while a disc is being imaged, so the copy gets the whole disk',
    }),
    recovery_redundancy_percent: Type.Integer({
      minimum: 0,
      maximum: 100,
      default: 0,
      description: 'Create PAR2 recovery data of this redundancy for every newly archived image (0: only when asked for an image)',
    }),
    adopt_roots: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      readOnly: true,
      description: 'Folders besides the output directory and storage.output_roots from which existing images may be adopted; set on the server only',
    }),
  },
  { additionalProperties: false, default: {} },
);

const DrivesSchema = Type.Object(
  {
    extra: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      readOnly: true,
      description: 'Additional block devices or image files to offer as drives; set on the server only',
    }),
    demo: Type.Enum(['auto', 'on', 'off'], {
      default: 'auto',
      description: 'Offer a demo drive backed by an image file (auto: in a checkout when no drive is found)',
    }),
    scan_optical: Type.Boolean({ default: true, description: 'Discover optical drives from sysfs' }),
  },
  { additionalProperties: false, default: {} },
);

const ServerSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, default: '127.0.0.1', readOnly: true, description: 'Address to listen on; set on the server only' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, readOnly: true, description: 'Port to listen on; set on the server only' }),
    socket: Type.String({ default: '', readOnly: true, description: 'Unix socket path (replaces host and port when set); set on the server only' }),
  },
  { additionalProperties: false, default: {} },
);

const JobsSchema = Type.Object(
  {
    max_running: Type.Integer({ minimum: 0, maximum: 64, default: 0, description: 'Jobs running at once across all drives (0: one per drive)' }),
    lease_seconds: Type.Integer({
      minimum: 5,
      maximum: 3600,
      default: 30,
      description: 'How long a crashed worker holds its job before another run takes it over',
    }),
  },
  { additionalProperties: false, default: {} },
);

const LogSchema = Type.Object(
  {
    level: Type.Enum(['debug', 'info', 'warning', 'error'], { default: 'info', description: 'Lowest level written to the log' }),
  },
  { additionalProperties: false, default: {} },
);

const SecuritySchema = Type.Object(
  {
    trusted_proxies: Type.Array(Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$' }), {
      default: [],
      readOnly: true,
      description: 'Addresses or CIDR ranges of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed; set on the server only',
    }),
    rate_limit_per_second: Type.Number({
      minimum: 0.1,
      maximum: 100000,
      default: 10,
      description: 'Requests per second per client address (as nginx limit_req rate)',
    }),
    rate_limit_burst: Type.Integer({
      minimum: 1,
      maximum: 100000,
      default: 20,
      description: 'Requests a client may make at once above the rate (as nginx burst, nodelay)',
    }),
    login_rate_per_minute: Type.Number({ minimum: 0.1, maximum: 100000, default: 10, description: 'Login and token requests per minute per client address' }),
    login_rate_burst: Type.Integer({ minimum: 1, maximum: 100000, default: 5, description: 'Login and token requests a client may make at once' }),
    session_idle_minutes: Type.Integer({ minimum: 1, maximum: 1440, default: 30, description: 'A web session ends after this long without a request' }),
    session_lifetime_hours: Type.Integer({
      minimum: 1,
      maximum: 720,
      default: 24,
      description: 'A web session ends this long after login, whatever the activity',
    }),
    max_sessions_per_user: Type.Integer({ minimum: 1, maximum: 100, default: 5, description: 'Concurrent sessions per user; a new login ends the oldest' }),
    password_max_age_days: Type.Integer({
      minimum: 1,
      maximum: 3650,
      default: 90,
      description: 'A password older than this must be changed at the next login',
    }),
    token_lifetime_minutes: Type.Integer({ minimum: 1, maximum: 1440, default: 15, description: 'Lifetime of bearer tokens from POST /api/v1/auth/token' }),
    audit_retention_days: Type.Integer({
      minimum: 1,
      maximum: 36500,
      default: 365,
      readOnly: true,
      description: 'Days to keep audit log entries; set on the server only',
    }),
  },
  { additionalProperties: false, default: {} },
);

const NotificationsSchema = Type.Object(
  {
    email_on_completion: Type.Boolean({
      default: false,
      description: 'Send an e-mail for each of the events chosen in email_events (over the SMTP server below)',
    }),
    email_address: Type.String({ default: '', maxLength: 254, pattern: '^$|^[^\\s@]+@[^\\s@]+$', description: 'Where the e-mails go' }),
    email_events: Type.Array(Type.Enum([...NOTIFICATION_EVENT_TYPES]), {
      minItems: 1,
      uniqueItems: true,
      default: ['job.completed', 'job.completed_with_errors', 'job.failed'],
      description: 'The events an e-mail is sent for',
    }),
    email_language: Type.Enum(['en', 'de', 'es', 'fr'], { default: 'en', description: 'Language of the e-mails' }),
    email_from: Type.String({ default: '', maxLength: 254, pattern: '^$|^[^\\s@]+@[^\\s@]+$', description: 'Sender address (empty: disk2iso@ the SMTP host)' }),
    smtp_host: Type.String({ default: '', maxLength: 253, pattern: '^$|^[A-Za-z0-9.:\\[\\]-]+$', description: 'SMTP server that sends the e-mails' }),
    smtp_port: Type.Integer({ minimum: 1, maximum: 65535, default: 587, description: 'Its port (587 for STARTTLS, 465 for TLS)' }),
    smtp_security: Type.Enum(['starttls', 'tls', 'none'], {
      default: 'starttls',
      description:
        'starttls: upgrade to TLS before signing in, refuse a server without it; tls: TLS from the start; none: plain text (only inside a trusted network)',
    }),
    smtp_user: Type.String({ default: '', maxLength: 254, description: 'User name at the SMTP server (empty: no sign-in)' }),
    smtp_password: Type.String({ default: '', maxLength: 1024, description: 'Its password' }),
    smtp_ca_file: Type.String({
      default: '',
      readOnly: true,
      description: "A PEM file of certificates to trust for the SMTP server besides the system's (e.g. a private CA); set on the server only",
    }),
    link_base_url: Type.String({
      default: '',
      maxLength: 2048,
      pattern: '^$|^https?://[^\\s]+$',
      description: 'Address of this service as users reach it (e.g. https://disk2iso.example.org), for links in e-mails; empty: no link',
    }),
    allow_private_destinations: Type.Boolean({
      default: false,
      readOnly: true,
      description: 'Let webhooks reach loopback, link-local and private addresses (the LAN, the host itself); set on the server only',
    }),
    browser: Type.Boolean({ default: true, description: 'Offer browser notifications for the events each browser chooses (each browser still asks its user)' }),
    push_allowed_hosts: Type.Array(Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.-]+$' }), {
      default: [],
      maxItems: 50,
      readOnly: true,
      description:
        'Host names of push services that may be at a loopback, link-local or private address (your own push relay); every other push endpoint must be public. Set on the server only',
    }),
    push_ca_file: Type.String({
      default: '',
      readOnly: true,
      description: "A PEM file of certificates to trust for push services besides the system's (e.g. your relay's private CA); set on the server only",
    }),
  },
  { additionalProperties: false, default: {} },
);

/** A topic level path: words of letters, digits, _ and -, separated by single slashes (no wildcards, no empty level). */
const TOPIC_PATH = '^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$';

const MqttSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: 'Publish drive states to an MQTT broker, with Home Assistant discovery' }),
    broker_url: Type.String({
      default: '',
      maxLength: 2048,
      pattern: '^$|^mqtts?://[^\\s/?#]+/?$',
      description: 'The broker, as mqtt://host:1883 or mqtts://host:8883 (TLS, checked against the system certificates)',
    }),
    username: Type.String({ default: '', maxLength: 254, description: 'User name at the broker (empty: no sign-in)' }),
    password: Type.String({ default: '', maxLength: 1024, description: 'Its password' }),
    client_id: Type.String({
      default: '',
      maxLength: 64,
      pattern: '^[A-Za-z0-9_-]*$',
      description: 'Client id at the broker (empty: disk2iso- and the host name)',
    }),
    topic_prefix: Type.String({
      default: 'disk2iso',
      maxLength: 100,
      pattern: TOPIC_PATH,
      description: 'Topics of states, availability and commands start with this',
    }),
    discovery_prefix: Type.String({
      default: 'homeassistant',
      maxLength: 100,
      pattern: TOPIC_PATH,
      description: "Home Assistant's discovery prefix, under which the entity configurations are published",
    }),
  },
  { additionalProperties: false, default: {} },
);

const BackupSchema = Type.Object(
  {
    dir: Type.String({
      default: '',
      readOnly: true,
      description:
        'Where scheduled backups and the copies made before a migration or a restore go (absolute, or relative to the data dir; empty: DATA_DIR/backups); set on the server only',
    }),
    interval_hours: Type.Integer({ minimum: 0, maximum: 8760, default: 24, description: 'Hours between scheduled backups (0: none)' }),
    keep_days: Type.Integer({ minimum: 1, maximum: 3650, default: 30, description: 'Days scheduled backups are kept' }),
  },
  { additionalProperties: false, default: {} },
);

const MetricsSchema = Type.Object(
  {
    allow_addresses: Type.Array(Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$' }), {
      default: [],
      readOnly: true,
      description:
        'Addresses or CIDR ranges (e.g. a Prometheus server) that may read GET /metrics without credentials; behind a proxy, the client address it forwards (security.trusted_proxies); set on the server only',
    }),
  },
  { additionalProperties: false, default: {} },
);

const ClusterSchema = Type.Object(
  {
    node_name: Type.String({
      default: '',
      maxLength: 63,
      pattern: '^([a-z0-9][a-z0-9-]*)?$',
      readOnly: true,
      description:
        "This process's name in the cluster's list of nodes: lower-case letters, digits and hyphens (empty: the host name, made to fit); set on the server only",
    }),
    heartbeat_seconds: Type.Integer({
      minimum: 1,
      maximum: 300,
      default: 5,
      readOnly: true,
      description: 'How often a node renews its entry and its drives in the list of nodes; set on the server only',
    }),
    offline_after_seconds: Type.Integer({
      minimum: 2,
      maximum: 3600,
      default: 15,
      readOnly: true,
      description: 'A node whose last heartbeat is older than this shows as offline; must exceed cluster.heartbeat_seconds; set on the server only',
    }),
    shared_output: Type.Boolean({
      default: false,
      readOnly: true,
      description:
        "True when storage.output_dir is one shared mount (NFS or similar) at the same path on every node: this node then reads every node's images itself; false: each node keeps its images on its own disk, and the others stream them from it (cluster.secret); set on the server only",
    }),
    secret: Type.String({
      default: '',
      pattern: '^([!-~]{32,256})?$',
      readOnly: true,
      description:
        'The key (32 to 256 printable characters, the same on every node) that signs the calls between nodes: a web instance streaming an image from the worker that holds it; empty: no node answers or makes such calls; set on the server only, never shown',
    }),
    internal_url: Type.String({
      default: '',
      maxLength: 300,
      pattern: '^(https?://[^\\s/?#@]+)?$',
      readOnly: true,
      description:
        "Where the other nodes reach this one's internal endpoint (http://tower-a.lan:8080); empty: the address it listens on (its host name when that is every address); set on the server only",
    }),
  },
  { additionalProperties: false, default: {} },
);

/**
 * Where the service's state lives. Empty (null): the embedded SQLite file in the data dir. A URL
 * switches the service and the CLI to PostgreSQL (the cluster mode). The URL carries the
 * database's password: it is shown and logged only with its credentials masked.
 */
const DatabaseSchema = Type.Object(
  {
    url: Type.Union([Type.Null(), Type.String({ pattern: '^postgres(ql)?://[^\\s]+$' })], {
      default: null,
      readOnly: true,
      description:
        'A postgres:// or postgresql:// URL of a PostgreSQL 15+ database to keep the state in (the cluster mode); null: the embedded SQLite file in the data dir; set on the server only',
    }),
  },
  { additionalProperties: false, default: {} },
);

export const ConfigSchema = Type.Object(
  {
    storage: StorageSchema,
    imaging: ImagingSchema,
    archive: ArchiveSchema,
    drives: DrivesSchema,
    server: ServerSchema,
    jobs: JobsSchema,
    log: LogSchema,
    security: SecuritySchema,
    notifications: NotificationsSchema,
    mqtt: MqttSchema,
    backup: BackupSchema,
    metrics: MetricsSchema,
    cluster: ClusterSchema,
    database: DatabaseSchema,
  },
  { additionalProperties: false, default: {} },
);

export type Settings = Type.Static<typeof ConfigSchema>;

/** Resolved runtime configuration: the validated settings plus where they came from. */
export interface Config extends Settings {
  data_dir: string;
  config_file: string | null;
  /** True when running from a source checkout (enables developer-friendly defaults). */
  in_checkout: boolean;
  /** Where each setting that is not a default came from (`imaging.verify` -> `environment DISK2ISO_IMAGING_VERIFY`). */
  setting_sources: Record<string, string>;
}

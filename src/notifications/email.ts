import { readFile } from 'node:fs/promises';
import nodemailer from 'nodemailer';
import type { Config } from '../config/schema.js';
import type { DueDelivery } from '../db/notification-repository.js';
import { errorMessage } from '../errors.js';
import type { JsonObject, JsonValue } from '../json.js';
import { createFormatters } from '../web/format.js';
import { allCatalogs, createTranslator } from '../web/i18n.js';
import type { DomainEvent, DomainEventType } from './model.js';
import type { ChannelOutcome, ExtraChannel } from './service.js';

/**
 * The e-mail channel: one message per event over the configured SMTP server (nodemailer), plain
 * text and HTML in the configured language, with the job's summary.
 */

export interface EmailChannelDeps {
  config: Config;
  /** The checksums of an archived image, for the summary; null when it is gone. */
  checksumsOf(archiveId: string): Promise<Record<string, string> | null>;
  timeoutMs: number;
}

interface EmailMessage {
  subject: string;
  text: string;
  html: string;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] ?? character);

const asString = (value: JsonValue | undefined): string | null => (typeof value === 'string' ? value : null);
const asNumber = (value: JsonValue | undefined): number | null => (typeof value === 'number' ? value : null);

const asObject = (value: JsonValue | undefined): JsonObject | null => (typeof value === 'object' && value !== null && !Array.isArray(value) ? value : null);

/** The rows an event about a disc, drive, verification or the output disk adds: what its payload says, labelled. */
function eventRows(event: DomainEvent, t: ReturnType<typeof createTranslator>, format: ReturnType<typeof createFormatters>): Array<[string, string]> {
  const { payload } = event;
  const rows: Array<[string, string]> = [];
  const add = (label: string, value: string | null): void => {
    if (value !== null && value !== '') rows.push([t(`email.labels.${label}`), value]);
  };
  if (event.type.startsWith('disc.') || event.type.startsWith('drive.')) {
    add('drive', asString(payload.drive_id));
    add('label', asString(payload.label));
    add('kind', asString(payload.kind));
    if (asNumber(payload.size_bytes) !== null) add('size', format.bytes(asNumber(payload.size_bytes)));
    add('message', asString(payload.message));
    add('duplicate_of', asString(asObject(payload.duplicate_of)?.filename));
    add('path', asString(payload.path));
  }
  const archive = asObject(payload.archive);
  if (archive !== null) {
    add('archive', asString(archive.filename));
    add('path', asString(archive.path));
  }
  for (const entry of Array.isArray(payload.checksums) ? payload.checksums : []) {
    const result = asObject(entry);
    const algorithm = asString(result?.algorithm)?.toUpperCase() ?? '';
    const expected = asString(result?.expected);
    const actual = asString(result?.actual);
    if (expected !== null) rows.push([t('email.labels.expected', { algorithm }), expected]);
    if (actual !== null) rows.push([t('email.labels.actual', { algorithm }), actual]);
  }
  if (event.type.startsWith('storage.')) {
    add('path', asString(payload.path));
    const threshold = asNumber(payload.threshold_percent);
    if (threshold !== null) add('threshold', format.percent(threshold));
    if (asNumber(payload.free_bytes) !== null) add('free', format.bytes(asNumber(payload.free_bytes)));
  }
  return rows;
}

/** The message for an event, in `language`; `checksums` and `link` are left out when null. */
function composeEmail(
  event: DomainEvent,
  language: Config['notifications']['email_language'],
  checksums: Record<string, string> | null,
  linkBase: string,
): EmailMessage {
  const t = createTranslator(allCatalogs()[language]);
  const format = createFormatters(language);
  const { payload } = event;
  const job = asObject(payload.job);
  const archive = asObject(payload.archive);
  const drive = asString(payload.drive_id) ?? '';
  const usedPercent = asNumber(payload.used_percent);
  const used = usedPercent === null ? '' : format.percent(usedPercent);
  const name = asString(job?.name) ?? asString(archive?.filename) ?? asString(payload.label) ?? drive;
  const subject = t(`email.subject.${event.type}`, { name, drive, used });
  const rows: Array<[string, string]> = [];
  if (job !== null) {
    const started = asString(job.started_at);
    const finished = asString(job.finished_at);
    const seconds = started !== null && finished !== null ? (Date.parse(finished) - Date.parse(started)) / 1000 : null;
    rows.push([t('email.labels.name'), name], [t('email.labels.size'), format.bytes(asNumber(job.size_bytes))]);
    if (seconds !== null) rows.push([t('email.labels.duration'), format.duration(seconds)]);
    const badBytes = asNumber(job.bad_bytes) ?? 0;
    rows.push([t('email.labels.bad_bytes'), badBytes === 0 ? t('email.none') : format.bytes(badBytes)]);
    for (const [algorithm, digest] of Object.entries(checksums ?? {})) rows.push([algorithm.toUpperCase(), digest]);
    const error = asString(job.error_message);
    if (error !== null && event.type !== 'job.completed') rows.push([t('email.labels.error'), error]);
  }
  rows.push(...eventRows(event, t, format));
  const reason = asString(payload.reason);
  if (reason !== null && event.type === 'job.paused') rows.push([t('email.labels.reason'), t(`email.reasons.${reason}`)]);
  const jobId = asString(job?.id);
  const link = linkBase !== '' && jobId !== null ? `${linkBase.replace(/\/+$/, '')}/jobs/${encodeURIComponent(jobId)}` : null;
  if (link !== null) rows.push([t('email.labels.link'), link]);
  const intro = t(`email.intro.${event.type}`, { name, drive, used });

  const text = [intro, '', ...rows.map(([label, value]) => `${label}: ${value}`), '', t('email.footer')].join('\n');
  const htmlRows = rows
    .map(([label, value]) => {
      const shown = value === link ? `<a href="${escapeHtml(value)}">${escapeHtml(value)}</a>` : escapeHtml(value);
      return `<tr><th align="left">${escapeHtml(label)}</th><td>${shown}</td></tr>`;
    })
    .join('');
  const html = `<!doctype html><html lang="${language}"><body><p>${escapeHtml(intro)}</p><table>${htmlRows}</table><p><small>${escapeHtml(t('email.footer'))}</small></p></body></html>`;
  return { subject, text, html };
}

/** The SMTP reply code at the start of a reply line (`250 2.0.0 OK`), or null. */
function replyCode(response: unknown): number | null {
  const match = typeof response === 'string' ? /^(\d{3})\b/.exec(response) : null;
  return match?.[1] === undefined ? null : Number(match[1]);
}

export function createEmailChannel(deps: EmailChannelDeps): ExtraChannel {
  const { config } = deps;
  const settings = () => config.notifications;

  return {
    wants(type: DomainEventType) {
      const s = settings();
      return s.email_on_completion && s.email_address !== '' && s.smtp_host !== '' && (s.email_events as readonly string[]).includes(type);
    },
    async send(due: DueDelivery, signal: AbortSignal): Promise<ChannelOutcome> {
      const s = settings();
      if (s.smtp_host === '' || s.email_address === '') return { ok: false, statusCode: null, error: 'no SMTP server or address is set' };
      const archiveId = asString(asObject(due.event.payload.job)?.archive_id);
      const checksums = archiveId === null ? null : await deps.checksumsOf(archiveId);
      const message = composeEmail(due.event, s.email_language, checksums, s.link_base_url);
      const transport = nodemailer.createTransport({
        host: s.smtp_host,
        port: s.smtp_port,
        secure: s.smtp_security === 'tls',
        requireTLS: s.smtp_security === 'starttls',
        ignoreTLS: s.smtp_security === 'none',
        ...(s.smtp_user === '' ? {} : { auth: { user: s.smtp_user, pass: s.smtp_password } }),
        ...(s.smtp_ca_file === '' ? {} : { tls: { ca: await readFile(s.smtp_ca_file, 'utf8') } }),
        connectionTimeout: deps.timeoutMs,
        greetingTimeout: deps.timeoutMs,
        socketTimeout: deps.timeoutMs,
      });
      const stop = (): void => transport.close();
      signal.addEventListener('abort', stop, { once: true });
      try {
        const info = await transport.sendMail({
          from: s.email_from !== '' ? s.email_from : `disk2iso@${s.smtp_host}`,
          to: s.email_address,
          subject: message.subject,
          text: message.text,
          html: message.html,
          // The delivery id, as webhooks carry it: a mail retried after a crash can be recognised.
          messageId: `<${due.delivery.id}@disk2iso>`,
        });
        return { ok: true, statusCode: replyCode(info.response), error: null };
      } catch (error) {
        const code = (error as { responseCode?: unknown }).responseCode;
        return { ok: false, statusCode: typeof code === 'number' ? code : null, error: errorMessage(error) };
      } finally {
        signal.removeEventListener('abort', stop);
        transport.close();
      }
    },
  };
}

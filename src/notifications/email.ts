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

/** The message for an event, in `language`; `checksums` and `link` are left out when null. */
function composeEmail(
  event: DomainEvent,
  language: Config['notifications']['email_language'],
  checksums: Record<string, string> | null,
  linkBase: string,
): EmailMessage {
  const t = createTranslator(allCatalogs()[language]);
  const format = createFormatters(language);
  const job = (
    typeof event.payload.job === 'object' && event.payload.job !== null && !Array.isArray(event.payload.job) ? event.payload.job : null
  ) as JsonObject | null;
  const name = asString(job?.name) ?? '';
  const subject = t(`email.subject.${event.type}`, { name });
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
  const reason = asString(event.payload.reason);
  if (reason !== null) rows.push([t('email.labels.reason'), t(`email.reasons.${reason}`)]);
  const jobId = asString(job?.id);
  const link = linkBase !== '' && jobId !== null ? `${linkBase.replace(/\/+$/, '')}/jobs/${encodeURIComponent(jobId)}` : null;
  if (link !== null) rows.push([t('email.labels.link'), link]);
  const intro = t(`email.intro.${event.type}`, { name });

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
      const archiveId = typeof due.event.payload.job === 'object' ? asString((due.event.payload.job as JsonObject).archive_id) : null;
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

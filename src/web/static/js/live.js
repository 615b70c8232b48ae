import { createFormat } from './format.js';
import { fetchHtml, parseItems, replaceContent } from './fragments.js';
import { notifyEvent } from './notify.js';
import { lang, t } from './strings.js';
import { toast } from './toast.js';

const EVENTS_URL = '/api/v1/events';
const MESSAGE_TYPES = ['job_created', 'job_update', 'job_finished', 'job_removed', 'job_log', 'archive_verification_update', 'domain_event'];
/** The specification's fallback when live updates are unavailable. */
const POLL_MS = 2000;
/** A running job's sector map and fields are fetched again at most this often. */
const DETAIL_REFRESH_MS = 2000;
const REFRESH_DEBOUNCE_MS = 200;
/** How long after the browser gave a stream up a new one is opened. */
const STREAM_REOPEN_MS = 5000;
const FINISH_MESSAGES = { completed: 'live.job_completed', failed: 'live.job_failed', cancelled: 'live.job_cancelled', paused: 'live.job_paused' };

const format = createFormat(lang);

function setText(root, field, text) {
  for (const element of root.querySelectorAll(`[data-field="${field}"]`)) element.textContent = text;
}

/** Writes a job_update's numbers into a card or the detail summary, without asking the server. */
function patchJob(root, data) {
  if (typeof data.progress === 'number') {
    for (const bar of root.querySelectorAll('progress[data-field="progress"]')) {
      bar.value = data.progress;
      bar.textContent = format.percent(data.progress);
    }
    setText(root, 'percent', format.percent(data.progress));
  }
  if ('speed_bps' in data) setText(root, 'speed', format.rate(data.speed_bps));
  if ('eta_seconds' in data) setText(root, 'eta', format.duration(data.eta_seconds));
  if (data.phase) setText(root, 'phase', t(`phase.${data.phase}`));
  if ('bytes_done' in data) setText(root, 'done', `${format.bytes(data.bytes_done)} / ${format.bytes(data.size_bytes ?? null)}`);
  if (typeof data.bad_bytes === 'number') {
    const sectorSize = Number(root.dataset.sectorSize) || 2048;
    setText(root, 'bad', format.number(Math.ceil(data.bad_bytes / sectorSize)));
    // What a retry pass has left to read is what is still bad.
    if (data.phase === 'retrying') setText(root, 'left', format.bytes(data.bad_bytes));
  }
}

/** Calls `run` once after a burst of calls has settled. */
function debounce(run, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
}

/**
 * Runs `refresh`, and once more POLL_MS after each failure until it succeeds: a refresh asked for by
 * a live event must not be lost to one failed request (a proxy's 502 while an instance of a cluster
 * is down), or the page would keep showing what the event changed, with nothing left to correct it.
 */
function retried(refresh) {
  let retryTimer = null;
  const attempt = () => {
    clearTimeout(retryTimer);
    retryTimer = null;
    refresh().catch(() => {
      retryTimer = setTimeout(attempt, POLL_MS);
    });
  };
  return attempt;
}

/** Calls `run` at most once per interval, the last call of an interval included. */
function throttle(run, ms) {
  let last = 0;
  let timer = null;
  return () => {
    const wait = last + ms - Date.now();
    if (wait <= 0) {
      last = Date.now();
      run();
    } else if (timer === null) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        run();
      }, wait);
    }
  };
}

/** An image's page: a running verification's numbers are written in place; any other change fetches the panel again. */
function archiveView(root) {
  const archiveId = root.dataset.archiveId;
  const refresh = async () => replaceContent(root, await fetchHtml(root.dataset.fragment));
  const scheduleRefresh = debounce(retried(refresh), REFRESH_DEBOUNCE_MS);
  return {
    refresh,
    scheduleRefresh,
    onMessage(message) {
      if (message.type !== 'archive_verification_update' || message.archive_id !== archiveId) return;
      const task = message.data;
      const element = root.querySelector('[data-verification-task]');
      const cancel = task.cancel_requested ? 'asked' : 'no';
      const same = element && element.dataset.taskId === task.id && element.dataset.status === task.status && element.dataset.cancel === cancel;
      if (same && task.status === 'running') {
        patchJob(element, { progress: task.progress, speed_bps: task.speed_bps, eta_seconds: task.eta_seconds });
        setText(element, 'done', `${format.bytes(task.bytes_done)} / ${format.bytes(task.bytes_total)}`);
      } else if (!same) {
        scheduleRefresh();
      }
    },
  };
}

function dashboardView(root) {
  const refresh = async () => replaceContent(root, await fetchHtml(root.dataset.fragment));
  const scheduleRefresh = debounce(retried(refresh), REFRESH_DEBOUNCE_MS);
  const card = (id) => root.querySelector(`[data-job-id="${CSS.escape(id)}"]`);
  return {
    refresh,
    scheduleRefresh,
    onMessage(message) {
      // A disc that came, went or waits, or a drive that appeared or vanished, changes the drives and "Discs waiting".
      if (message.type === 'domain_event' && /^(disc|drive)\./.test(message.data.type ?? '')) scheduleRefresh();
      if (message.job_id === undefined) return;
      if (message.type === 'job_update') {
        const element = card(message.job_id);
        // A new phase can change what a card shows (pass and what is left instead of speed and time left).
        const phaseChanged = Boolean(message.data.phase) && message.data.phase !== element?.dataset.phase;
        // The job's node went offline or came back (the cluster mode): the card says so.
        const nodeChanged = typeof message.data.node_online === 'boolean' && String(message.data.node_online) !== element?.dataset.nodeOnline;
        if (!element || (message.data.status && message.data.status !== element.dataset.status) || phaseChanged || nodeChanged) scheduleRefresh();
        else patchJob(element, message.data);
      } else if (message.type !== 'job_log') {
        scheduleRefresh();
      }
    },
  };
}

function jobView(root) {
  const jobId = root.dataset.jobId;
  const log = document.getElementById('job-log');
  const summary = () => root.querySelector('.job-summary');
  const refreshJob = async () => replaceContent(root, await fetchHtml(root.dataset.fragment));
  const refreshLog = async () => {
    if (!log) return;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    const lines = parseItems(await fetchHtml(`${log.dataset.logUrl}?after=${encodeURIComponent(log.dataset.lastId ?? '0')}`));
    for (const line of lines) {
      if (log.querySelector(`[data-log-id="${CSS.escape(line.dataset.logId ?? '')}"]`)) continue;
      log.append(line);
      log.dataset.lastId = line.dataset.logId ?? log.dataset.lastId;
    }
    if (lines.length > 0) document.querySelector('[data-log-empty]')?.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  };
  const refresh = () => Promise.all([refreshJob(), refreshLog()]);
  const scheduleJob = throttle(retried(refreshJob), DETAIL_REFRESH_MS);
  const scheduleLog = debounce(retried(refreshLog), REFRESH_DEBOUNCE_MS);
  return {
    refresh,
    scheduleRefresh: () => {
      scheduleJob();
      scheduleLog();
    },
    onMessage(message) {
      if (message.job_id !== jobId) return;
      if (message.type === 'job_log') {
        scheduleLog();
        return;
      }
      const element = summary();
      if (message.type === 'job_update' && element && (!message.data.status || message.data.status === element.dataset.status)) patchJob(element, message.data);
      // The sector map and fields change with progress too; they come from the server.
      scheduleJob();
      if (message.type !== 'job_update') scheduleLog();
    },
  };
}

/** Toasts for what happened to jobs, on every live page. */
function announce(message) {
  if (message.job_id === undefined) return;
  // A "job created" notice is stale once its job has started or ended.
  const movedOn = message.type === 'job_finished' || (message.type === 'job_update' && message.data?.status && message.data.status !== 'queued');
  if (movedOn) document.querySelector(`[data-notice-job="${CSS.escape(message.job_id)}"]`)?.remove();
  const name = message.data?.name ?? document.querySelector(`[data-job-id="${CSS.escape(message.job_id)}"]`)?.dataset.name ?? message.job_id;
  if (message.type === 'job_created') {
    toast(t('live.job_created', { name }), 'info', `job:${message.job_id}:created`);
  } else if (message.type === 'job_finished') {
    const withErrors = message.data?.status === 'completed' && message.data.bad_bytes > 0;
    const key = withErrors ? 'live.job_completed_with_errors' : FINISH_MESSAGES[message.data?.status];
    if (!key) return;
    const kind = message.data.status === 'failed' ? 'error' : message.data.status === 'completed' && !withErrors ? 'ok' : 'info';
    toast(t(key, { name }), kind, `job:${message.job_id}:${message.data.status}`);
  }
}

/** The text of a domain event's notification: what it is about (a job, an image, a disc or drive, the output disk) filled in. */
function eventText(event) {
  const payload = event.payload ?? {};
  const drive = payload.drive_id ?? '';
  const name = payload.job?.name ?? payload.archive?.filename ?? payload.label ?? drive;
  const used = typeof payload.used_percent === 'number' ? format.percent(payload.used_percent) : '';
  return t(`live.events.${event.type}`, { name, drive, used });
}

/**
 * Browser notifications follow the durable stream's domain events (the same that webhooks and
 * e-mails carry), for the types this browser chose, unless an administrator switched them off for
 * everyone (notifications.browser).
 */
function announceEvent(message) {
  if (message.type !== 'domain_event' || typeof message.data.type !== 'string') return;
  if (document.querySelector('[data-live]')?.dataset.notifyBrowser === 'off') return;
  notifyEvent(message.data, eventText(message.data));
}

const VIEWS = { job: jobView, archive: archiveView, dashboard: dashboardView };

/**
 * Live pages (the dashboard, a job's page, an image's page) follow the server's Server-Sent Events
 * and update themselves. While the stream is down they fetch their live part every 2 seconds instead.
 */
export function initLive() {
  const root = document.querySelector('[data-live]');
  if (!root) return;
  const view = (VIEWS[root.dataset.live] ?? dashboardView)(root);
  root.addEventListener('disk2iso:refresh', () => view.refresh().catch(() => undefined));

  let pollTimer = null;
  let warned = false;
  const startPolling = () => {
    if (pollTimer !== null) return;
    if (!warned) {
      toast(t('live.offline'));
      warned = true;
    }
    pollTimer = setInterval(() => view.refresh().catch(() => undefined), POLL_MS);
  };
  const stopPolling = () => {
    clearInterval(pollTimer);
    pollTimer = null;
  };

  if (!('EventSource' in window)) {
    startPolling();
    return;
  }
  const receive = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!message || (typeof message.job_id !== 'string' && typeof message.task_id !== 'string' && typeof message.event_id !== 'string')) return;
    message.data ??= {};
    view.onMessage(message);
    announce(message);
    announceEvent(message);
  };
  const catchUp = retried(() => view.refresh());
  let source = null;
  let reopenTimer = null;
  const open = () => {
    reopenTimer = null;
    source = new EventSource(EVENTS_URL);
    source.addEventListener('open', () => {
      stopPolling();
      // What changed between the page's rendering and this stream's start (a verification that ended
      // meanwhile), or during an outage, is not replayed: catch up once on every open.
      catchUp();
      warned = false;
    });
    source.addEventListener('error', (event) => {
      startPolling();
      // The browser reconnects a stream that broke off by itself, but gives it up for good when the
      // answer to a reconnect is not a stream (a proxy's 502 while no instance of a cluster is up):
      // a new one is opened a while later, so the page goes live again once the service is back.
      if (event.target.readyState === EventSource.CLOSED && reopenTimer === null) reopenTimer = setTimeout(open, STREAM_REOPEN_MS);
    });
    for (const type of MESSAGE_TYPES) source.addEventListener(type, receive);
  };
  open();
  window.addEventListener('pagehide', () => {
    clearTimeout(reopenTimer);
    reopenTimer = null;
    source.close();
  });
}

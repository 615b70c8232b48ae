import { LOCALES, type Language } from './i18n.js';

/**
 * Numbers, sizes, rates, durations and dates as people of each language write them. The browser
 * module static/js/format.js formats live updates the same way; keep the two in step.
 */
export interface Formatters {
  number(value: number, fractionDigits?: number): string;
  percent(value: number): string;
  /** Decimal units (1 GB = 10^9 bytes), as disc capacities are printed. */
  bytes(value: number | null): string;
  rate(bytesPerSecond: number | null): string;
  /** `4:23` or `1:02:03`; a dash when unknown. */
  duration(seconds: number | null): string;
  dateTime(iso: string | null): string;
  /** Date and time to the second, for log lines. */
  timestamp(iso: string | null): string;
  date(iso: string | null): string;
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
const DASH = '–';
const DATE_PARTS: Intl.DateTimeFormatOptions = { day: 'numeric', month: 'short', year: 'numeric' };

export function createFormatters(language: Language): Formatters {
  const locale = LOCALES[language];
  const numberFormats = new Map<number, Intl.NumberFormat>();
  const numberFormat = (digits: number): Intl.NumberFormat => {
    let format = numberFormats.get(digits);
    if (!format) {
      format = new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
      numberFormats.set(digits, format);
    }
    return format;
  };
  const percentFormat = new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 });
  // The month as a word ("4 Dec 2026", "4. Dez. 2026", "4 dic 2026"): numeric dates read differently
  // in each country (04/12 is April in one and December in another); the time is always 24-hour.
  const dateTimeFormat = new Intl.DateTimeFormat(locale, { ...DATE_PARTS, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const timestampFormat = new Intl.DateTimeFormat(locale, { ...DATE_PARTS, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  const dateFormat = new Intl.DateTimeFormat(locale, DATE_PARTS);

  const bytes = (value: number | null): string => {
    if (value === null || !Number.isFinite(value)) return DASH;
    let unit = 0;
    let scaled = value;
    while (Math.abs(scaled) >= 1000 && unit < UNITS.length - 1) {
      scaled /= 1000;
      unit += 1;
    }
    return `${numberFormat(unit === 0 ? 0 : 1).format(scaled)} ${UNITS[unit]}`;
  };

  const parse = (iso: string | null): Date | null => {
    if (iso === null) return null;
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? null : date;
  };

  return {
    number: (value, fractionDigits = 0) => numberFormat(fractionDigits).format(value),
    percent: (value) => percentFormat.format(value / 100),
    bytes,
    rate: (bytesPerSecond) => (bytesPerSecond === null ? DASH : `${bytes(bytesPerSecond)}/s`),
    duration(seconds) {
      if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return DASH;
      const whole = Math.round(seconds);
      const hours = Math.floor(whole / 3600);
      const minutes = Math.floor((whole % 3600) / 60);
      const rest = String(whole % 60).padStart(2, '0');
      return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
    },
    dateTime(iso) {
      const date = parse(iso);
      return date === null ? DASH : dateTimeFormat.format(date);
    },
    timestamp(iso) {
      const date = parse(iso);
      return date === null ? DASH : timestampFormat.format(date);
    },
    date(iso) {
      const date = parse(iso);
      return date === null ? DASH : dateFormat.format(date);
    },
  };
}

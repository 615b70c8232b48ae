// Formats live values like the server does (src/web/format.ts); keep the two in step.
const LOCALES = { en: 'en-GB', de: 'de-DE', es: 'es-ES', fr: 'fr-FR' };
const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
const DASH = '–';

export function createFormat(lang) {
  const locale = LOCALES[lang] ?? LOCALES.en;
  const numberFormat = (digits) => new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  const percentFormat = new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 });

  const bytes = (value) => {
    if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
    let unit = 0;
    let scaled = value;
    while (Math.abs(scaled) >= 1000 && unit < UNITS.length - 1) {
      scaled /= 1000;
      unit += 1;
    }
    return `${numberFormat(unit === 0 ? 0 : 1).format(scaled)} ${UNITS[unit]}`;
  };

  return {
    number: (value) => numberFormat(0).format(value),
    percent: (value) => percentFormat.format(value / 100),
    bytes,
    rate: (value) => (value === null || value === undefined ? DASH : `${bytes(value)}/s`),
    duration(seconds) {
      if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return DASH;
      const whole = Math.round(seconds);
      const hours = Math.floor(whole / 3600);
      const minutes = Math.floor((whole % 3600) / 60);
      const rest = String(whole % 60).padStart(2, '0');
      return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
    },
  };
}

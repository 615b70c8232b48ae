import type { App } from '../../http/app.js';
import { LANGUAGE_COOKIE, isLanguage } from '../i18n.js';
import { formFields } from '../request.js';
import { returnPath } from '../respond.js';

/** A year: the choice is a preference, not a secret. */
const COOKIE_MAX_AGE_SECONDS = 365 * 24 * 3600;

/** The language switch: a small form in the page header, so it works without JavaScript. */
export function registerLanguageSwitch(app: App): void {
  app.post('/language', { config: { permission: 'public' } }, async (request, reply) => {
    const lang = formFields(request.body).one('lang');
    if (isLanguage(lang)) {
      const secure = request.protocol === 'https' ? '; Secure' : '';
      reply.header('set-cookie', `${LANGUAGE_COOKIE}=${lang}; Path=/; Max-Age=${COOKIE_MAX_AGE_SECONDS}; SameSite=Lax${secure}`);
    }
    return reply.redirect(returnPath(request, '/'), 303);
  });
}

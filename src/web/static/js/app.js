import { initCancelDialogs, initInlineActions } from './actions.js';
import { initForms } from './forms.js';
import { initLive } from './live.js';
import { initNotificationSettings } from './notify.js';

document.documentElement.classList.add('js');
initForms();
initInlineActions();
initCancelDialogs();
initNotificationSettings();
initLive();

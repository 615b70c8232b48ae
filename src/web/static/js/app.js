import { initCancelDialogs, initInlineActions } from './actions.js';
import { initForms } from './forms.js';
import { initLive } from './live.js';
import { initNotificationSettings } from './notify.js';
import { initPushDevices, initServiceWorker } from './pwa.js';

document.documentElement.classList.add('js');
initForms();
initInlineActions();
initCancelDialogs();
initNotificationSettings();
initLive();
initServiceWorker();
initPushDevices();

import { benchApi } from './api.js';
import { benchCatalogue } from './catalogue.js';
import { benchCluster } from './cluster.js';
import { benchFiles } from './files.js';
import { benchImaging } from './imaging.js';
import { benchLighthouse } from './lighthouse.js';
import { benchNotifications } from './notifications.js';
import { benchRescue } from './rescue.js';
import { benchScale } from './scale.js';
import { benchVerify } from './verify.js';

const BENCHMARKS: Record<string, () => Promise<void>> = {
  imaging: benchImaging,
  api: benchApi,
  rescue: benchRescue,
  notifications: benchNotifications,
  files: benchFiles,
  catalogue: benchCatalogue,
  verify: benchVerify,
  lighthouse: benchLighthouse,
  cluster: benchCluster,
  scale: benchScale,
};

const wanted = process.argv[2] ?? 'all';
const names = wanted === 'all' ? Object.keys(BENCHMARKS) : [wanted];
for (const name of names) {
  const bench = BENCHMARKS[name];
  if (!bench) {
    console.error(`unknown benchmark "${name}"; choose one of: all, ${Object.keys(BENCHMARKS).join(', ')}`);
    process.exit(2);
  }
  await bench();
}

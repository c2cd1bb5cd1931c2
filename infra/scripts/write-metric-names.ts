// Rewrites infra/metric-names.json from lib/metric-names.ts: `npm run metric-names`.
import { writeFileSync } from 'fs';
import * as path from 'path';
import { metricNamesJson } from '../lib/metric-names';

const target = path.join(__dirname, '..', 'metric-names.json');
writeFileSync(target, metricNamesJson());
console.log(`wrote ${target}`);

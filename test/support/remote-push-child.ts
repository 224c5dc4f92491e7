// A process that pushes one artifact of a store to a remote, for the trials
// that kill a push at a chosen moment: argv is the store, the fingerprint and the URL.
import { RemoteCache } from '../../src/remote/cache.js';
import { openBackend } from '../../src/remote/open.js';
import { parseRemoteUrl } from '../../src/remote/url.js';
import { ArtifactStore } from '../../src/runner/store.js';

const [root, fingerprint, url] = process.argv.slice(2) as [string, string, string];
const store = await ArtifactStore.open(root);
const found = await store.lookup(fingerprint, 'quick');
if (!found.found) throw new Error(`no artifact ${fingerprint}`);
const cache = new RemoteCache(() => openBackend(parseRemoteUrl(url)), store, { name: url, readOnly: false, warn: (m) => process.stderr.write(`${m}\n`) });
const r = await cache.push(found.entry);
process.stdout.write(`${JSON.stringify(r)}\n`);
cache.close();

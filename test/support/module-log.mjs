// `node --import ./module-log.mjs ...`: appends every ES module the process
// resolves to $TLPIPE_MODULE_LOG, so a test can see what a command loads.
import { register } from 'node:module';

register(
  `data:text/javascript,${encodeURIComponent(`
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(${JSON.stringify(process.env.TLPIPE_MODULE_LOG ?? '/dev/null')}, r.url + '\\n');
  return r;
}
`)}`,
);

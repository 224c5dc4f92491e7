// The s3rver process that test/support/s3-server.ts starts: argv is the data
// folder, the port (0: any free one) and the bucket to create.
import S3rver from 's3rver';

const [directory, port, bucket] = process.argv.slice(2);
const server = new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true, configureBuckets: [{ name: bucket! }] });
const address = (await server.run()) as { port: number };
process.stdout.write(`listening ${address.port}\n`);
// Never outlive the test process that started it (killed tests run no cleanup).
const parent = process.ppid;
setInterval(() => {
  try {
    process.kill(parent, 0);
  } catch {
    process.exit(0);
  }
}, 500).unref();

/**
 * The fake IMDS of watch-bench.ts in a process of its own, so the CPU it spends answering the nodes' polls is
 * not counted as the orchestrator's. Says its URL once; answers `count` with the requests served so far.
 */
import { FakeImdsServer, LAB_HOST_ADDRESS } from '@spotlift/testing';

const imds = await new FakeImdsServer().start({ host: LAB_HOST_ADDRESS });
process.send!({ url: imds.url });
process.on('message', (m: string) => {
  if (m === 'count') {
    process.send!({ count: imds.requests.length });
    // Only the count matters: the kept requests would grow without end.
    imds.requests.length = 0;
  } else if (m === 'stop') void imds.stop().then(() => process.exit(0));
});

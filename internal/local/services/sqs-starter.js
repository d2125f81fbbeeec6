// Starts local-aws-sqs (the SQS fallback used when moto_server is missing) on
// 127.0.0.1. Arguments: <path of the local-aws-sqs package> <port>.
const { createSqsServer } = require(process.argv[2]);
const port = Number(process.argv[3]);
createSqsServer({ port, hostname: "127.0.0.1", emulateQueueCreationLifecycle: false }).then(
  () => console.log(`local-aws-sqs listening on 127.0.0.1:${port}`),
  (err) => { console.error(err); process.exit(1); },
);

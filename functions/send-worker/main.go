// Command send-worker is the Lambda that consumes send-jobs: hold rules,
// exactly-once sends through NowCerts, the audit log.
package main

import "github.com/coiflow/coiflow/internal/wire"

func main() { wire.Main("send-worker", wire.SendWorker) }

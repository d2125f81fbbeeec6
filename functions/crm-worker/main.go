// Command crm-worker is the CRM sync Lambda: it consumes crm-jobs (webhook
// events and send-pipeline timeline entries) and keeps the CRM in step.
package main

import "github.com/coiflow/coiflow/internal/wire"

func main() { wire.Main("crm-worker", wire.CRMWorker) }

// Command webhook is the Lambda behind POST /webhooks/{source}/{token} and
// GET /healthz: it authenticates, validates and normalises webhooks and enqueues
// jobs. All logic lives in internal/webhook; this file only wires it.
package main

import "github.com/coiflow/coiflow/internal/wire"

func main() { wire.Main("webhook", wire.Webhook) }

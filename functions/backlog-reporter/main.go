// Command backlog-reporter runs on an EventBridge schedule and emits how many
// certificates wait for approval and how long the oldest has waited, for the
// dashboard and the stale-hold alarm. All logic lives in internal/backlog; this
// file only wires it.
package main

import "github.com/coiflow/coiflow/internal/wire"

func main() { wire.Main("backlog-reporter", wire.BacklogReporter) }

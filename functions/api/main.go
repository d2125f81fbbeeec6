// Command api is the Lambda behind /api/ (and the /app page): the staff API for
// holds and sends. All logic lives in internal/staffapi; this file only wires it.
package main

import "github.com/coiflow/coiflow/internal/wire"

func main() { wire.Main("api", wire.API) }

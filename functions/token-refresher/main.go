// Command token-refresher runs on an EventBridge schedule and keeps the NowCerts
// access token in Secrets Manager fresh, under the same lease as every other
// refresh. All logic lives in internal/nowcerts; this file only wires it.
package main

import "github.com/coiflow/coiflow/internal/wire"

func main() { wire.Main("token-refresher", wire.TokenRefresher) }

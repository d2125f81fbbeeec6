package main

import (
	"os"
	"testing"

	"github.com/coiflow/coiflow/internal/local/testenv"
)

// TestMain stops the local AWS stack the integration tests started (only
// those calling testenv.Get start it).
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

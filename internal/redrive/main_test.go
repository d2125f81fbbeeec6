package redrive_test

import (
	"os"
	"testing"

	"github.com/coiflow/coiflow/internal/local/testenv"
)

// TestMain stops the local AWS stack the integration tests started.
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

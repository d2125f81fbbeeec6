package store_test

import (
	"os"
	"testing"

	"github.com/coiflow/coiflow/internal/local/testenv"
)

// TestMain runs this package's tests and stops the local AWS stack the
// integration tests started (testenv.Get starts it on first use).
func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

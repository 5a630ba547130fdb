package app_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the service starts (parts, reload loop, producers' connections) ends
// with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

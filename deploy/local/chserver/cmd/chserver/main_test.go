package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// runWith runs the command with args, as from the command line.
func runWith(t *testing.T, args ...string) error {
	t.Helper()
	saved := os.Args
	t.Cleanup(func() { os.Args = saved })
	os.Args = append([]string{"chserver", "-data", t.TempDir(), "-listen", "127.0.0.1:0", "-http", "off"}, args...)
	return run()
}

// No server starts with a user that has no password, nor without users: there is no
// anonymous access. Each refusal names what is wrong, before the engine is opened.
func TestStartRefusesUsersWithoutPasswords(t *testing.T) {
	t.Setenv("CHSERVER_USERS", "")
	t.Setenv("CHSERVER_USERS_FILE", "")
	require.ErrorContains(t, runWith(t, "-users", "admin::admin"), "user admin has an empty password")
	require.ErrorContains(t, runWith(t, "-users", "default:"), `"default:…" is not name:password:role`)
	require.ErrorContains(t, runWith(t), "users: none given")
	require.ErrorContains(t, runWith(t, "-users", "admin:pw:root"), `role "root"`)

	file := filepath.Join(t.TempDir(), "users")
	require.NoError(t, os.WriteFile(file, []byte("admin:pw:admin\n"), 0o644))
	require.ErrorContains(t, runWith(t, "-users-file", file), "chmod 600")
	require.NoError(t, os.WriteFile(file, []byte("admin::admin\n"), 0o600))
	require.NoError(t, os.Chmod(file, 0o600))
	require.ErrorContains(t, runWith(t, "-users-file", file), "empty password")
	require.ErrorContains(t, runWith(t, "-users", "admin:pw:admin", "-users-file", file), "not both")
}

package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrSecretMode is returned by ReadSecret for a file that users other than its owner can read.
var ErrSecretMode = errors.New("readable by group or others: chmod 600 it")

// ReadSecret reads a password or token from the file at path, without the trailing newline
// an editor or `echo` adds. A file readable by its group or others is refused with
// ErrSecretMode: a secret another account can read is not a secret (CONVENTIONS 15, fail
// closed). Errors name the file.
func ReadSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err) // *PathError names the file
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("secret file %s: not a regular file", path)
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return "", fmt.Errorf("secret file %s (mode %04o): %w", path, mode, ErrSecretMode)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("read secret %s: %w", path, err)
	}
	s := strings.TrimRight(string(data), "\r\n")
	if s == "" {
		return "", fmt.Errorf("secret file %s: empty", path)
	}
	return s, nil
}

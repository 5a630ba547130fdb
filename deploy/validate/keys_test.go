package validate

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// binaryKeys are the configuration keys a binary accepts, as its -h prints them: flags and
// their environment variables (pkg/config derives both from the YAML keys).
type binaryKeys struct {
	env   map[string]bool
	flags map[string]bool
}

var (
	keysMu    sync.Mutex
	keysCache = map[string]binaryKeys{}
	envInHelp = regexp.MustCompile(`\(env (VIGIE_[A-Z0-9_]+)\)`)
	flagHelp  = regexp.MustCompile(`(?m)^  -([a-z0-9_.-]+)`)
)

// keysOf runs `<binary> [subcommand…] -h` of the binaries the Dockerfile builds.
func keysOf(t *testing.T, binary string, sub ...string) binaryKeys {
	t.Helper()
	id := binary + " " + strings.Join(sub, " ")
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keysCache[id]; ok {
		return k
	}
	out, _ := exec.Command(filepath.Join(binaries(t), binary), append(sub, "-h")...).CombinedOutput()
	k := binaryKeys{env: map[string]bool{}, flags: map[string]bool{}}
	for _, m := range envInHelp.FindAllStringSubmatch(string(out), -1) {
		k.env[m[1]] = true
	}
	for _, m := range flagHelp.FindAllStringSubmatch(string(out), -1) {
		k.flags[m[1]] = true
	}
	require.NotEmpty(t, k.flags, "%s -h printed no flag: %s", id, out)
	keysCache[id] = k
	return k
}

// commandKeys says which binary and subcommand a container runs, from its image and command.
func commandKeys(t *testing.T, target string, args []string) binaryKeys {
	t.Helper()
	switch target {
	case "vigiectl":
		require.NotEmpty(t, args, "vigiectl without a command")
		if args[0] == "topics" {
			return keysOf(t, "vigiectl", "topics", "apply")
		}
		return keysOf(t, "vigiectl", args[0])
	case "simulator":
		require.NotEmpty(t, args, "simulator without a command")
		return keysOf(t, "simulator", args[0])
	}
	return keysOf(t, target)
}

// checkKeys names each environment variable VIGIE_… and each flag that the binary does not know.
func checkKeys(where string, keys binaryKeys, env map[string]string, args []string) []string {
	var problems []string
	for name := range env {
		if strings.HasPrefix(name, "VIGIE_") && !keys.env[name] {
			problems = append(problems, where+": "+name+" is no configuration key of the binary")
		}
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !keys.flags[name] {
			problems = append(problems, where+": flag -"+name+" is unknown to the binary")
		}
	}
	return problems
}

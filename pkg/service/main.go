package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vigie/vigie/pkg/config"
)

// Main is all a service's main does:
//
//	func main() { service.Main("writer", app.DefaultConfig(), app.Build) }
//
// It handles -version, loads the configuration into defaults (VIGIE_<NAME>_* environment,
// the YAML file named by -config or VIGIE_<NAME>_CONFIG, flags), then calls Run and exits:
// 0 after a clean stop, -h or -version; 2 on a configuration error; 1 on any other error.
// Errors are printed on stderr as "<name>: <error>".
func Main[C Config](name string, defaults C, build func(ctx context.Context, s *Service, cfg C) error) {
	os.Exit(mainCode(context.Background(), name, os.Args[1:], defaults, build, os.Stdout, os.Stderr))
}

// Exit codes of Main.
const (
	exitOK     = 0
	exitFailed = 1
	exitConfig = 2
)

func mainCode[C Config](ctx context.Context, name string, args []string, cfg C, build func(ctx context.Context, s *Service, cfg C) error, stdout, stderr io.Writer) int {
	// Loading the configuration comes before Run takes SIGHUP over; a SIGHUP then must not
	// end the process either.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if wantsVersion(args) {
		fmt.Fprintln(stdout, versionLine(name))
		return exitOK
	}
	if err := config.Load(cfg, EnvPrefix(name), args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitConfig
	}
	err := Run(ctx, name, cfg, build)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if ce := (*configError)(nil); errors.As(err, &ce) {
		return exitConfig
	}
	return exitFailed
}

// EnvPrefix is the prefix of a service's environment variables: VIGIE_ and the name in
// capitals, dashes as underscores (writer: VIGIE_WRITER, so VIGIE_WRITER_ADMIN_LISTEN).
func EnvPrefix(name string) string {
	return "VIGIE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// wantsVersion is true for `-version` (or --version, -version=true) before any "--", or for a
// sole `version` argument.
func wantsVersion(args []string) bool {
	if len(args) == 1 && args[0] == "version" {
		return true
	}
	for _, a := range args {
		if a == "--" {
			return false
		}
		switch strings.TrimPrefix(a, "-") {
		case "-version", "version", "-version=true", "version=true":
			if strings.HasPrefix(a, "-") {
				return true
			}
		}
	}
	return false
}

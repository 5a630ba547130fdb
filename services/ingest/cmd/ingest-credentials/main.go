// Command ingest-credentials creates sensor tokens: for each -sensor it makes a random token,
// adds its hash to the credentials file (created if missing, written atomically so that a
// running ingest reloads it safely) and prints "sensor_id token" lines on stdout, the only
// place the tokens ever appear.
//
//	ingest-credentials -file .state/ingest/credentials.yaml -sensor cp-aix-luynes-mas-01 -sensor ma-nice-mas-01
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/vigie/vigie/pkg/sensorauth"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ingest-credentials:", err)
		os.Exit(1)
	}
}

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func run(args []string) error {
	fset := flag.NewFlagSet("ingest-credentials", flag.ContinueOnError)
	path := fset.String("file", "", "credentials file to create or extend (required)")
	var sensors list
	fset.Var(&sensors, "sensor", "sensor id to make a token for (repeatable)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *path == "" || len(sensors) == 0 {
		return errors.New("-file and at least one -sensor are required")
	}
	f, err := sensorauth.Load(*path)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = &sensorauth.File{}, nil
	}
	if err != nil {
		return err
	}
	var out strings.Builder
	for _, s := range sensors {
		e, tok, err := sensorauth.NewEntry(s)
		if err != nil {
			return err
		}
		f.Credentials = append(f.Credentials, e)
		fmt.Fprintf(&out, "%s %s\n", s, tok)
	}
	if err := f.WriteFile(*path); err != nil {
		return err
	}
	_, err = os.Stdout.WriteString(out.String())
	return err
}

// Command ingest-credentials creates sensor tokens: for each -sensor (all of one -type, which
// decides the event kinds they may post) it makes a random token, adds its hash to the
// credentials file (created if missing, written atomically so that a
// running ingest reloads it safely) and prints "sensor_id token" lines on stdout, the only
// place the tokens ever appear.
//
//	ingest-credentials -file .state/ingest/credentials.yaml -type mas -sensor cp-aix-luynes-mas-01 -sensor ma-nice-mas-01
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/vigie/vigie/pkg/reference"
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
	st := fset.String("type", "", fmt.Sprintf("the sensors' type, which decides the kinds they may post: one of %v (required)", reference.SensorTypes))
	var sensors list
	fset.Var(&sensors, "sensor", "sensor id to make a token for (repeatable)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *path == "" || *st == "" || len(sensors) == 0 {
		return errors.New("-file, -type and at least one -sensor are required")
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
		e, tok, err := sensorauth.NewEntry(s, reference.SensorType(*st))
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

// Command healthcheck is the health probe of Vigie's images: it GETs one URL (by default a
// service's /healthz on its admin port) and exits 0 on a 2xx answer, 1 otherwise. The
// images have no shell, curl or wget (FROM scratch), so Docker's HEALTHCHECK and compose's
// healthcheck run this static binary instead.
//
//	healthcheck [-timeout 2s] [URL]     (default http://127.0.0.1:9090/healthz)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 2*time.Second, "bound on the whole request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	url := "http://127.0.0.1:9090/healthz"
	switch fs.NArg() {
	case 0:
	case 1:
		url = fs.Arg(0)
	default:
		return fmt.Errorf("one URL at most, got %d arguments", fs.NArg())
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	return nil
}

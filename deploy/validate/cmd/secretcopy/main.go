// Command secretcopy copies the files of a Kubernetes secret volume into a directory of the
// pod's own (an in-memory emptyDir), each with mode 0400 and owned by the user it runs as.
//
// Vigie's services refuse a secret file that their group or others can read. A secret
// volume's files belong to root, or, with the pod's fsGroup, to that group with group read
// added by the kubelet (defaultMode 0400 becomes 0440): neither passes. So an init container
// running as the service's user (uid 65532, in the pod's fsGroup) reads the volume and writes
// copies that only that user can read; the service mounts only the copies.
//
//	secretcopy -from /var/run/vigie/secret-volume -to /run/secrets
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "secretcopy:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fset := flag.NewFlagSet("secretcopy", flag.ContinueOnError)
	from := fset.String("from", "", "secret volume to read (required)")
	to := fset.String("to", "", "directory to write the copies to (required)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return errors.New("-from and -to are required")
	}
	entries, err := os.ReadDir(*from)
	if err != nil {
		return err
	}
	n := 0
	for _, e := range entries {
		// The kubelet's atomic writer keeps the data in ..data and ..<timestamp>: the keys are
		// the symlinks beside them.
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		src := filepath.Join(*from, e.Name())
		st, err := os.Stat(src) // follows the key's symlink
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		dst := filepath.Join(*to, e.Name())
		if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(dst, data, 0o400); err != nil {
			return err
		}
		if err := os.Chmod(dst, 0o400); err != nil { // whatever the umask
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s: no secret file", *from)
	}
	fmt.Fprintf(os.Stderr, "secretcopy: %d files from %s to %s (mode 0400)\n", n, *from, *to)
	return nil
}

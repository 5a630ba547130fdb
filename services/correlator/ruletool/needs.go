package ruletool

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Needs writes, for each rule of the files (which must load: run Check first), its mode and
// the history of a facility's data its claims need, and how that is derived (issue 14: a
// facility counts for the rule only once its feed is older than that):
//
//	TAC_SPREAD        scheduled  needs 28d of history  window 7d + baseline 21d
func Needs(paths []string, w io.Writer) error {
	files, err := rules.ReadFiles(paths)
	if err != nil {
		return err
	}
	rs, err := rules.LoadFiles(files)
	if err != nil {
		return fmt.Errorf("the rules do not load (rules check lists each problem):\n%w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rs {
		need, why := r.Needs()
		history := "needs no history"
		if need > 0 {
			history = "needs " + rules.FormatDuration(need) + " of history"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Mode, history, why)
	}
	return tw.Flush()
}

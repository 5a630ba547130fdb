package consume_test

import (
	stdjson "encoding/json"

	"github.com/vigie/vigie/pkg/event"
)

func json(e event.Enriched) ([]byte, error) { return stdjson.Marshal(e) }

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

package sink

import (
	"context"
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ErrRejected marks an insert that ClickHouse (or the driver, before sending) refused
// because of the data itself: retrying the same rows fails again, splitting the batch
// isolates the rows at fault.
var ErrRejected = errors.New("rows rejected")

// Class is what to do with an insert error.
type Class int

// Classes of insert errors.
const (
	// Retryable errors (network, timeouts, too many parts, memory) go away by themselves:
	// retry the same block with the same token.
	Retryable Class = iota
	// Rejected errors come from the rows: split the block.
	Rejected
	// Fatal errors (schema, permissions) need an operator: stop without committing.
	Fatal
)

// ClickHouse error codes, from ClickHouse's src/Common/ErrorCodes.cpp.
var (
	dataErrorCodes = map[int32]bool{
		6: true, 26: true, 27: true, 38: true, 41: true, 53: true, 69: true, 70: true, 72: true,
		117: true, 131: true, 190: true, 321: true, 349: true, 469: true, 472: true,
	}
	fatalCodes = map[int32]bool{
		16: true, 47: true, 60: true, 62: true, 81: true, 192: true, 193: true, 194: true,
		291: true, 497: true, 516: true,
	}
)

// Classify says whether err is worth a retry, a split or a stop. An unknown error is
// retryable: the retry budget bounds the cost of a wrong guess, while a wrong "rejected"
// would send good rows to the dead-letter topic.
func Classify(err error) Class {
	if errors.Is(err, ErrRejected) {
		return Rejected
	}
	if errors.Is(err, context.Canceled) {
		return Fatal
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch {
		case dataErrorCodes[ex.Code]:
			return Rejected
		case fatalCodes[ex.Code]:
			return Fatal
		}
	}
	return Retryable
}

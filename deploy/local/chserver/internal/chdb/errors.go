package chdb

import (
	"strconv"
	"strings"
)

// UnknownExceptionCode is ClickHouse's UNKNOWN_EXCEPTION, used when chDB's message carries no code.
const UnknownExceptionCode = 1002

// Error is an exception raised by the engine, with ClickHouse's error code.
type Error struct {
	Code    int32
	Message string
}

func (e *Error) Error() string { return e.Message }

// newError turns chDB's error text into an Error. chDB reports exceptions as text such as
// "Code: 60. DB::Exception: Unknown table ...". When exceptions are nested, the innermost
// code (the last one in the text) names the root cause, as the real server reports it.
func newError(msg string) *Error {
	msg = strings.TrimSpace(msg)
	return &Error{Code: parseCode(msg), Message: msg}
}

func parseCode(msg string) int32 {
	code := int32(UnknownExceptionCode)
	for rest := msg; ; {
		i := strings.Index(rest, "Code: ")
		if i < 0 {
			return code
		}
		rest = rest[i+len("Code: "):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 || j >= len(rest) || rest[j] != '.' {
			continue
		}
		if n, err := strconv.ParseInt(rest[:j], 10, 32); err == nil {
			code = int32(n)
		}
	}
}

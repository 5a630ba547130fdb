// Package chdb runs SQL on the chDB engine (ClickHouse compiled as a shared library),
// loaded at run time with purego from CHDB_LIB_PATH. chDB holds one engine per process.
package chdb

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// library holds the entry points of libchdb.so this package uses.
type library struct {
	connect                func(argc int32, argv **byte) unsafe.Pointer
	closeConn              func(conn unsafe.Pointer)
	setSignalHandlers      func(enabled int32)
	queryN                 func(conn unsafe.Pointer, query *byte, queryLen uintptr, format *byte, formatLen uintptr) unsafe.Pointer
	streamQueryN           func(conn unsafe.Pointer, query *byte, queryLen uintptr, format *byte, formatLen uintptr) unsafe.Pointer
	streamFetch            func(conn unsafe.Pointer, result unsafe.Pointer) unsafe.Pointer
	streamCancel           func(conn unsafe.Pointer, result unsafe.Pointer)
	destroyResult          func(result unsafe.Pointer)
	resultBuffer           func(result unsafe.Pointer) unsafe.Pointer
	resultLength           func(result unsafe.Pointer) uintptr
	resultError            func(result unsafe.Pointer) unsafe.Pointer
	resultRowsRead         func(result unsafe.Pointer) uint64
	resultBytesRead        func(result unsafe.Pointer) uint64
	resultStorageRowsRead  func(result unsafe.Pointer) uint64
	resultStorageBytesRead func(result unsafe.Pointer) uint64
	resultRowsWritten      func(result unsafe.Pointer) uint64
	resultBytesWritten     func(result unsafe.Pointer) uint64
	resultElapsed          func(result unsafe.Pointer) float64
	queryParamsN           func(conn unsafe.Pointer, query *byte, queryLen uintptr, format *byte, formatLen uintptr, names **byte, nameLens *uintptr, values **byte, valueLens *uintptr, count uintptr) unsafe.Pointer
	streamQueryParamsN     func(conn unsafe.Pointer, query *byte, queryLen uintptr, format *byte, formatLen uintptr, names **byte, nameLens *uintptr, values **byte, valueLens *uintptr, count uintptr) unsafe.Pointer
}

var (
	libOnce sync.Once
	lib     *library
	libErr  error
)

// loadLibrary opens libchdb.so once per process. The path comes from CHDB_LIB_PATH
// (see deploy/local/chdb-fetch.sh), so that a missing library is a clear error, not a panic.
func loadLibrary(path string) (*library, error) {
	libOnce.Do(func() {
		if path == "" {
			path = os.Getenv("CHDB_LIB_PATH")
		}
		if path == "" {
			path = findCachedLibrary()
		}
		if path == "" {
			libErr = fmt.Errorf("CHDB_LIB_PATH is not set and no .cache/chdb/libchdb.so was found: run deploy/local/chdb-fetch.sh (make deps)")
			return
		}
		if _, err := os.Stat(path); err != nil {
			libErr = fmt.Errorf("chdb library: %w (run deploy/local/chdb-fetch.sh)", err)
			return
		}
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			libErr = fmt.Errorf("dlopen %s: %w", path, err)
			return
		}
		l := &library{}
		for name, fn := range map[string]any{
			"chdb_connect":                     &l.connect,
			"chdb_close_conn":                  &l.closeConn,
			"chdb_set_signal_handlers_enabled": &l.setSignalHandlers,
			"chdb_query_n":                     &l.queryN,
			"chdb_stream_query_n":              &l.streamQueryN,
			"chdb_stream_fetch_result":         &l.streamFetch,
			"chdb_stream_cancel_query":         &l.streamCancel,
			"chdb_destroy_query_result":        &l.destroyResult,
			"chdb_result_buffer":               &l.resultBuffer,
			"chdb_result_length":               &l.resultLength,
			"chdb_result_error":                &l.resultError,
			"chdb_result_rows_read":            &l.resultRowsRead,
			"chdb_result_bytes_read":           &l.resultBytesRead,
			"chdb_result_storage_rows_read":    &l.resultStorageRowsRead,
			"chdb_result_storage_bytes_read":   &l.resultStorageBytesRead,
			"chdb_result_rows_written":         &l.resultRowsWritten,
			"chdb_result_bytes_written":        &l.resultBytesWritten,
			"chdb_result_elapsed":              &l.resultElapsed,
			"chdb_query_with_params_n":         &l.queryParamsN,
			"chdb_stream_query_with_params_n":  &l.streamQueryParamsN,
		} {
			sym, err := purego.Dlsym(h, name)
			if err != nil {
				libErr = fmt.Errorf("chdb library %s lacks %s: %w", path, name, err)
				return
			}
			purego.RegisterFunc(fn, sym)
		}
		lib = l
	})
	return lib, libErr
}

// findCachedLibrary looks for .cache/chdb/libchdb.so (where chdb-fetch.sh puts it) in the
// working directory and its parents, so that tests run from any module folder find it.
func findCachedLibrary() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, ".cache", "chdb", "libchdb.so")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// cString returns a NUL-terminated copy of s for C.
func cString(s string) *byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return &b[0]
}

// goString copies a NUL-terminated C string.
func goString(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}

// strData returns a pointer to the bytes of s (never nil, so C sees a valid address).
func strData(s string) *byte {
	if len(s) == 0 {
		return &zero
	}
	return unsafe.StringData(s)
}

var zero byte

package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Error(w, "not ready: kafka: error: dial", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	require.NoError(t, run([]string{srv.URL + "/healthz"}))
	err := run([]string{srv.URL + "/readyz"})
	require.ErrorContains(t, err, "503")
	require.ErrorContains(t, err, "kafka")
	require.Error(t, run([]string{"-timeout", "200ms", "http://127.0.0.1:1/healthz"}))
	require.Error(t, run([]string{"a", "b"}))
}

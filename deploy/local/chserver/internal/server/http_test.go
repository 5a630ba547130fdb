package server

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLexEndsAtTrailingBlanksAndComments(t *testing.T) {
	for _, sql := range []string{"SELECT 1 \n", "SELECT 1 -- done", "SELECT 1\t/* c */ "} {
		toks, err := lex(sql)
		require.NoError(t, err)
		require.Len(t, toks, 2, "%q", sql)
	}
}

func TestSplitHTTPQuery(t *testing.T) {
	for _, c := range []struct {
		param, body, sql, data string
		hasData                bool
	}{
		{"SELECT 1", "", "SELECT 1", "", false},
		{"SELECT 1 ", "+ 1", "SELECT 1 \n+ 1", "", false},
		{"", "SELECT 2", "SELECT 2", "", false},
		{"INSERT INTO t FORMAT CSV", "1,2\n", "INSERT INTO t FORMAT CSV", "1,2\n", true},
		{"", "INSERT INTO t FORMAT CSV\n1,'\n", "INSERT INTO t FORMAT CSV\n", "1,'\n", true},
		{"", "insert into t (a, `b c`) settings x = 'FORMAT' format TSV  \r\n\tx\n", "insert into t (a, `b c`) settings x = 'FORMAT' format TSV  \r\n", "\tx\n", true},
		{"", "INSERT INTO t VALUES (1, 'a\n\nb')", "INSERT INTO t VALUES", " (1, 'a\n\nb')", true},
		{"INSERT INTO t VALUES (1)", "", "INSERT INTO t VALUES", " (1)", true},
		{"", "INSERT INTO t SELECT 1", "INSERT INTO t SELECT 1", "", false},
	} {
		sql, data, err := splitHTTPQuery(c.param, strings.NewReader(c.body))
		require.NoError(t, err, c)
		require.Equal(t, c.sql, sql, c)
		require.Equal(t, c.hasData, data != nil && c.data != "", c)
		if c.hasData {
			b, err := io.ReadAll(data)
			require.NoError(t, err)
			require.Equal(t, c.data, string(b))
		}
	}
	_, _, err := splitHTTPQuery("", strings.NewReader("  "))
	require.ErrorContains(t, err, "Empty query")
}

func TestBindParams(t *testing.T) {
	got, err := bindParams("SELECT {a:UInt8}, '{not:String}', {s:String}, {d:DateTime64(3, 'UTC')} FROM {t:Identifier}",
		map[string]string{"a": "1", "s": "it's", "d": "2026-01-01 00:00:00.000", "t": "my table"})
	require.NoError(t, err)
	require.Equal(t, "SELECT CAST('1' AS UInt8), '{not:String}', CAST('it\\'s' AS String), "+
		"CAST('2026-01-01 00:00:00.000' AS DateTime64(3, 'UTC')) FROM `my table`", got)
	_, err = bindParams("SELECT {missing:UInt8}", nil)
	require.Equal(t, int32(codeUnknownQueryParameter), errorCode(err))
}

// FuzzHTTPQuery holds the HTTP interface's reading of a request to never panicking.
func FuzzHTTPQuery(f *testing.F) {
	f.Add("", "INSERT INTO t FORMAT CSV\n1,2")
	f.Add("SELECT {a:UInt8}", "")
	f.Add("INSERT INTO t VALUES (1)", "")
	f.Add("", "insert into t (a) settings s = '{' values ('")
	f.Fuzz(func(t *testing.T, param, body string) {
		sql, data, err := splitHTTPQuery(param, strings.NewReader(body))
		if err != nil {
			return
		}
		if data != nil {
			_, _ = io.ReadAll(data)
		}
		_, _ = bindParams(sql, map[string]string{"a": "1"})
	})
}

package event_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
)

// hostile are the forms an identifier takes in the texts a sender controls: plain, with and
// without the Luhn digit, as an IMSI or a phone number (E.164 and national), escaped, split
// by separators, as a number with a fraction, in full-width digits.
var hostile = []string{
	"358288021042170", "35828802104217", "208150123456789", "+33612345678", "0612345678",
	`\u0033\u0035\u0038\u0032\u0038\u0038\u0030\u0032\u0031\u0030\u0034\u0032\u0031\u0037\u0030`,
	"35:82:88:02:10:42:17", "208_150_123_456_789", "208150123456789.0", "2.08150123456789e14",
	"06 12 34 56 78", "(06) 12-34-56-78", "３５８２８８０２１０４２１７０",
}

// digits reports the digits of s, whatever stands between them.
func digits(s string) string {
	return regexp.MustCompile(`[^0-9]`).ReplaceAllString(s, "")
}

// TestDLQAllowList: whatever a service puts into a dead-letter record, what is written holds
// no identifier in any form: a text with more than 8 digits becomes the reason's fixed text,
// a pointer token a sender chose becomes "*", an identifier not of Vigie's form is left out.
func TestDLQAllowList(t *testing.T) {
	for _, h := range hostile {
		rec := event.DLQ{
			Reason:   event.ReasonSchemaInvalid,
			Service:  "ingest",
			Error:    "bad value " + h,
			Errors:   []event.FieldError{{Pointer: "/zone/" + h, Reason: "'" + h + "' does not match"}, {Pointer: "/" + h, Reason: "unknown field"}},
			FailedAt: event.NewTime(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)),
			SensorID: h,
			EventID:  h,
			Source:   &event.Source{Topic: h, Partition: 1, Offset: 2},
			Body:     &event.Body{Bytes: 12, HMAC: h},
		}
		b, err := event.EncodeDLQ(&rec)
		require.NoError(t, err)
		out := string(b)
		var dec map[string]any
		require.NoError(t, json.Unmarshal(b, &dec))
		for _, v := range []string{h, digits(h)} {
			if v != "" {
				require.NotContains(t, out, v, "form %q", h)
			}
		}
		require.LessOrEqual(t, len(digits(strings.ReplaceAll(out, "2026-11-25T09:00:00.000Z", ""))), 8, out)

		var got event.DLQ
		require.NoError(t, event.DecodeDLQ(b, &got))
		require.Equal(t, event.ReasonText(event.ReasonSchemaInvalid), got.Error)
		require.Equal(t, []event.FieldError{{Pointer: "/zone/*", Reason: "invalid"}, {Pointer: "/*", Reason: "unknown field"}}, got.Errors)
		require.Empty(t, got.SensorID)
		require.Empty(t, got.EventID)
		require.Nil(t, got.Source)
		require.Equal(t, &event.Body{Bytes: 12}, got.Body)
	}
}

// TestDLQAllowListKeeps: the fields of an ordinary record pass as they are.
func TestDLQAllowListKeeps(t *testing.T) {
	rec := event.DLQ{
		Reason:     event.ReasonSchemaInvalid,
		Service:    "ingest",
		Error:      "2 field(s) do not match detector-event.v1",
		Errors:     []event.FieldError{{Pointer: "/bands/3", Reason: "enum"}, {Pointer: "/rssi_dbm", Reason: "minimum"}},
		FailedAt:   event.NewTime(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)),
		SensorID:   "cp-aix-luynes-mas-01",
		EventID:    "01JDQ4M5N8X7K2T3V9W0YZAB1D",
		Body:       &event.Body{Bytes: 231, HMAC: "5b3c2f1d0e9a8b7c6d5e4f3a2b1c0d9e"},
		KeyVersion: "k2026a",
	}
	b, err := event.EncodeDLQ(&rec)
	require.NoError(t, err)
	var got event.DLQ
	require.NoError(t, event.DecodeDLQ(b, &got))
	require.Equal(t, rec, got)
	require.Equal(t, []byte("cp-aix-luynes-mas-01"), got.Key())

	rec.Reason = "made_up"
	b, err = event.EncodeDLQ(&rec)
	require.NoError(t, err)
	require.NoError(t, event.DecodeDLQ(b, &got))
	require.Equal(t, event.ReasonOther, got.Reason, "an unknown reason code is written as other")
}

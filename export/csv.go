package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The text of an export, cell by cell, as Pioreactor writes it (Python's csv
// module over SQLite rows): floats rounded to 12 decimals and printed as
// Python's repr, UTC timestamps with milliseconds, local times without an
// offset, CRLF rows quoted only when they must be. These functions are pure.

// Layouts of the times in an export.
const (
	// utcLayout is how timestamps are stored and exported: UTC, milliseconds (truncated).
	utcLayout = "2006-01-02T15:04:05.000Z"
	// localLayout is the generated <column>_localtime: the node's zone, no offset.
	localLayout = "2006-01-02 15:04:05.000"
	// stampLayout names files: the zip (UTC) and its CSVs (local time).
	stampLayout = "20060102150405"
)

// formatFloat prints x as Pioreactor's export does: rounded to 12 decimals,
// then the shortest text that reads back the same, with ".0" on whole
// numbers and an exponent (two digits at least) below 1e-4 or from 1e16.
func formatFloat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	if r, err := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 12, 64), 64); err == nil {
		x = r // FormatFloat rounds correctly, ties to even, as Python's round does
	}
	if x == 0 {
		if math.Signbit(x) {
			return "-0.0"
		}
		return "0.0"
	}
	e := strconv.FormatFloat(x, 'e', -1, 64) // the shortest digits, and their exponent
	if n, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:]); n < -4 || n >= 16 {
		return e // Go's exponent form is Python's: 1.5e-05, 1e+16
	}
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if strings.IndexByte(s, '.') < 0 {
		s += ".0"
	}
	return s
}

// formatUTC is a stored timestamp's text: UTC with milliseconds, truncated.
func formatUTC(t time.Time) string { return t.UTC().Format(utcLayout) }

// formatLocal is a generated <column>_localtime cell: t in loc, milliseconds, no offset.
func formatLocal(t time.Time, loc *time.Location) string { return t.In(loc).Format(localLayout) }

// hoursSince is hours_since_experiment_created: whole seconds from created
// to t (milliseconds dropped first, as SQLite's unixepoch does), in hours.
func hoursSince(t, created time.Time) float64 {
	return float64(t.Unix()-created.Unix()) / 3600.0
}

// cellText is the CSV text of one cell: nil is empty, a time is a UTC
// timestamp, a float is formatFloat's, a string is itself.
func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return formatFloat(x)
	case int:
		return strconv.Itoa(x)
	case time.Time:
		if x.IsZero() {
			return ""
		}
		return formatUTC(x)
	}
	return fmt.Sprint(v)
}

// appendCSVRow appends one CSV row to dst, as Python's csv module (excel
// dialect) writes it: comma-separated, a field quoted only when it holds a
// comma, a double quote, CR or LF (quotes doubled), the row ended by CRLF.
// A field's text is kept as it is, line breaks included.
func appendCSVRow(dst []byte, fields []string) []byte {
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		if len(fields) == 1 && f == "" {
			dst = append(dst, `""`...) // a lone empty field, else the row would be blank
			continue
		}
		if !strings.ContainsAny(f, ",\"\r\n") {
			dst = append(dst, f...)
			continue
		}
		dst = append(dst, '"')
		dst = append(dst, strings.ReplaceAll(f, `"`, `""`)...)
		dst = append(dst, '"')
	}
	return append(dst, '\r', '\n')
}

// csvMemberName is the zip path of a dataset's CSV of one partition: the
// experiment (or all_experiments) and the unit (or all_units), stamped with
// the export's local time; spaces in the file's name become underscores.
func csvMemberName(dataset, exp, unit, stamp string) string {
	name := dataset + "-" + exp + "-" + unit + "-" + stamp + ".csv"
	return dataset + "/" + strings.ReplaceAll(name, " ", "_")
}

// pyJSON encodes v as Python's json.dumps(v, indent=2, sort_keys=True)
// does: keys sorted (v's objects are maps), two-space indents, every
// character beyond ASCII escaped as \uXXXX, no newline at the end.
func pyJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r < utf8.RuneSelf:
			out = append(out, b[0])
		case r > 0xffff:
			r -= 0x10000
			out = fmt.Appendf(out, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		b = b[size:]
	}
	return out, nil
}

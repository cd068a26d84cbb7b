package export

import (
	"math"
	"testing"
	"time"
)

// The expected texts were printed by Python 3 (repr(round(x, 12))), which
// is what Pioreactor's export writes.
func TestFormatFloatAsPioreactor(t *testing.T) {
	for _, c := range []struct {
		x    float64
		want string
	}{
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{24, "24.0"},
		{1, "1.0"},
		{0.1, "0.1"},
		{0.047427624987, "0.047427624987"},
		{1.5e-05, "1.5e-05"},
		{1e-05, "1e-05"},
		{0.0001, "0.0001"},
		{0.00012345, "0.00012345"},
		{1e16, "1e+16"},
		{1e15, "1000000000000000.0"},
		{123456789012345678, "1.2345678901234568e+17"},
		{-2.5, "-2.5"},
		{1.0 / 3, "0.333333333333"},
		{2.0 / 3, "0.666666666667"},
		{0.1 + 0.2, "0.3"},
		{1e-13, "0.0"},
		{-1e-13, "-0.0"},
		{5e-13, "0.0"},
		{1.5e-12, "2e-12"},
		{2.5e-12, "2e-12"},
		{1.23456789012345e-7, "1.23457e-07"},
		{1e22, "1e+22"},
		{-1234.5678901234567, "-1234.567890123457"},
		{3.14159265358979, "3.14159265359"},
		{0.29999999999999993, "0.3"},
		{0.000123456789012345, "0.000123456789"},
		{math.Inf(1), "inf"},
		{math.NaN(), "nan"},
	} {
		if got := formatFloat(c.x); got != c.want {
			t.Errorf("formatFloat(%v) = %q, want %q", c.x, got, c.want)
		}
	}
}

func TestExportTimes(t *testing.T) {
	ts := time.Date(2025, 4, 16, 4, 51, 12, 858_999_999, time.UTC)
	if got := formatUTC(ts.In(time.FixedZone("x", -5*3600))); got != "2025-04-16T04:51:12.858Z" {
		t.Errorf("formatUTC: %q", got)
	}
	if got := formatLocal(ts, time.FixedZone("x", 2*3600)); got != "2025-04-16 06:51:12.858" {
		t.Errorf("formatLocal: %q", got)
	}
	created := time.Date(2025, 4, 15, 4, 51, 12, 999_000_000, time.UTC)
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{created.Add(24 * time.Hour), "24.0"},
		{ts, "24.0"}, // milliseconds are dropped before subtracting
		{created.Add(90 * time.Minute), "1.5"},
		{created.Add(time.Second), "0.000277777778"},
		{created.Add(-time.Hour), "-1.0"},
	} {
		if got := formatFloat(hoursSince(c.t, created)); got != c.want {
			t.Errorf("hoursSince(%v) = %s, want %s", c.t, got, c.want)
		}
	}
}

func TestAppendCSVRow(t *testing.T) {
	for _, c := range []struct {
		fields []string
		want   string
	}{
		{[]string{"a,b", `q"x`, "l\nm", " lead", `\.`, "", "plain"}, "\"a,b\",\"q\"\"x\",\"l\nm\", lead,\\.,,plain\r\n"},
		{[]string{"r\r\nn"}, "\"r\r\nn\"\r\n"},
		{[]string{""}, "\"\"\r\n"},
		{[]string{"", ""}, ",\r\n"},
		{[]string{"exp1", "unit1", "2025-01-01T00:00:00.000Z", "0.5"}, "exp1,unit1,2025-01-01T00:00:00.000Z,0.5\r\n"},
	} {
		if got := string(appendCSVRow(nil, c.fields)); got != c.want {
			t.Errorf("appendCSVRow(%q) = %q, want %q", c.fields, got, c.want)
		}
	}
}

func TestCellText(t *testing.T) {
	ts := time.Date(2025, 1, 1, 12, 0, 0, 1_500_000, time.UTC)
	for _, c := range []struct {
		v    any
		want string
	}{
		{nil, ""}, {"x y", "x y"}, {0.5, "0.5"}, {3, "3"}, {ts, "2025-01-01T12:00:00.001Z"}, {time.Time{}, ""},
	} {
		if got := cellText(c.v); got != c.want {
			t.Errorf("cellText(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestCSVMemberName(t *testing.T) {
	for _, c := range []struct {
		ds, exp, unit, want string
	}{
		{"od_readings", "exp1", "all_units", "od_readings/od_readings-exp1-all_units-20250101120000.csv"},
		{"od_readings", "exp1", "unit1", "od_readings/od_readings-exp1-unit1-20250101120000.csv"},
		{"experiments", "all_experiments", "all_units", "experiments/experiments-all_experiments-all_units-20250101120000.csv"},
		{"logs", "my exp", "all_units", "logs/logs-my_exp-all_units-20250101120000.csv"},
		{"logs", "$experiment", "u1", "logs/logs-$experiment-u1-20250101120000.csv"},
	} {
		if got := csvMemberName(c.ds, c.exp, c.unit, "20250101120000"); got != c.want {
			t.Errorf("csvMemberName(%q, %q, %q) = %q, want %q", c.ds, c.exp, c.unit, got, c.want)
		}
	}
}

// Python's json.dumps(v, indent=2, sort_keys=True) printed the expected text.
func TestPyJSON(t *testing.T) {
	v := map[string]any{"b": []string{}, "a": map[string]any{"é": "日本😀", "x": nil, "l": []any{1, "<a>"}}}
	want := "{\n  \"a\": {\n    \"l\": [\n      1,\n      \"<a>\"\n    ],\n    \"x\": null,\n    \"\\u00e9\": \"\\u65e5\\u672c\\ud83d\\ude00\"\n  },\n  \"b\": []\n}"
	got, err := pyJSON(v)
	if err != nil || string(got) != want {
		t.Fatalf("pyJSON:\n%s\nwant\n%s (%v)", got, want, err)
	}
}

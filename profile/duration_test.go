package profile

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for in, want := range map[any]time.Duration{
		nil: 0, 0: 0, 1: time.Hour, 0.5: 30 * time.Minute, "30s": 30 * time.Second, "2m": 2 * time.Minute,
		"1.5h": 90 * time.Minute, "2d": 48 * time.Hour, " 45 S ": 45 * time.Second, "0.25": 15 * time.Minute, "500ms": 500 * time.Millisecond,
	} {
		if got, err := ParseTime(in); err != nil || got != want {
			t.Errorf("ParseTime(%#v) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []any{"-1s", "soon", "", "1w", "NaN", "Infh", -2.0, "400d", true, []any{1}} {
		if got, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%#v) = %v, want an error", in, got)
		}
	}
}

package profile

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxTime is the latest time an action may have: a year.
const maxTime = 365 * 24 * time.Hour

// ParseTime reads a profile's time: a number of hours (Pioreactor's
// hours_elapsed, and t as a number), or a number with a unit, "30s", "2m",
// "1.5h", "2d" (s, m, h, d; also "ms"). nil is 0.
func ParseTime(v any) (time.Duration, error) {
	var hours float64
	switch x := v.(type) {
	case nil:
		return 0, nil
	case int:
		hours = float64(x)
	case int64:
		hours = float64(x)
	case uint64:
		hours = float64(x)
	case float64:
		hours = x
	case string:
		return parseTimeText(x)
	default:
		return 0, fmt.Errorf("a time is a number of hours or a text such as \"30s\", \"2m\", \"1.5h\", \"2d\", not %T", v)
	}
	return fromHours(hours, fmt.Sprint(v))
}

func parseTimeText(s string) (time.Duration, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	unit := time.Hour
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, unit = strings.TrimSpace(n), u.d
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || len(t) > 32 {
		return 0, fmt.Errorf("%q is not a time: write hours as a number, or a number with s, m, h or d (\"30s\", \"2m\", \"1.5h\", \"2d\")", s)
	}
	return fromHours(f*float64(unit)/float64(time.Hour), s)
}

func fromHours(h float64, text string) (time.Duration, error) {
	if math.IsNaN(h) || math.IsInf(h, 0) || h < 0 {
		return 0, fmt.Errorf("%s is not a time: it must be 0 or more", text)
	}
	d := time.Duration(math.Round(h * float64(time.Hour)))
	if h*float64(time.Hour) > float64(maxTime) {
		return 0, fmt.Errorf("%s is more than a year", text)
	}
	return d, nil
}

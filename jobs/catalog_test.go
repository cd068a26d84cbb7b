package jobs

import (
	"errors"
	"testing"
)

// Pioreactor's UI sends what is typed in a setting's field as text; a
// number in text is the number, anything else is still refused.
func TestCheckTakesNumbersAsText(t *testing.T) {
	lim := DefaultLimits()
	for _, v := range []any{650.0, 650, "650", " 650.5 ", "6.5e2"} {
		if err := Check("stirring", map[string]any{"target_rpm": v}, lim); err != nil {
			t.Errorf("target_rpm %#v: %v", v, err)
		}
	}
	for _, v := range []any{"fast", "", "NaN", "Inf", "1e9", "650 rpm", true, nil, "1" + string(make([]byte, 40))} {
		if err := Check("stirring", map[string]any{"target_rpm": v}, lim); !errors.Is(err, ErrBadSetting) {
			t.Errorf("target_rpm %#v: %v, want ErrBadSetting", v, err)
		}
	}
	d := catalog["stirring"]
	got, err := d.check("stirring", map[string]any{"target_rpm": "650"}, lim)
	if err != nil || got["target_rpm"] != 650.0 {
		t.Fatalf("check keeps %#v (%v), want the number 650", got["target_rpm"], err)
	}
}

package profile_test

import (
	"strings"
	"testing"

	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/profile"
)

// TestUnitNamesAsFSM checks that profiles take the unit names the state
// machine takes, and no other.
func TestUnitNamesAsFSM(t *testing.T) {
	for _, name := range []string{"pio1", "pio-dev-00", "bench_b", "A", "", "unit one", "10.0.0.7", "::1", "localhost",
		"LocalHost", "$broadcast", "a.b", strings.Repeat("x", 63), strings.Repeat("x", 64), "é", "123"} {
		if got, want := profile.ValidUnitNameForTest(name) == "", fsm.ValidUnitName(name) == ""; got != want {
			t.Errorf("%q: profile says valid %v, fsm %v", name, got, want)
		}
	}
}

package fsm

import (
	"strings"
	"testing"
)

func TestUnitNames(t *testing.T) {
	for _, ok := range []string{"worker1", "pio-2", "A_b", strings.Repeat("x", 63)} {
		if why := ValidUnitName(ok); why != "" {
			t.Errorf("%q refused: %s", ok, why)
		}
	}
	for _, bad := range []string{"", "a b", "a.b", "$broadcast", "localhost", "LocalHost", "10.0.0.1", "::1",
		strings.Repeat("x", 64), "é", "a\x00", "a\n", strings.Repeat("y", 500000)} {
		if ValidUnitName(bad) == "" {
			t.Errorf("%q accepted", bad)
		}
	}
	// A long name is not copied whole into the reason.
	if why := ValidUnitName(strings.Repeat("y", 500000)); len(why) > 200 {
		t.Errorf("reason of %d bytes", len(why))
	}
}

func TestExperimentNames(t *testing.T) {
	for _, ok := range []string{"exp", "Exp 1 (yeast)", "_test", "é-coli ü", "v1.2", "a.b.c", strings.Repeat("x", 199), strings.Repeat("é", 199)} {
		if why := ValidExperimentName(ok); why != "" {
			t.Errorf("%q refused: %s", ok, why)
		}
	}
	for _, bad := range []string{"", "current", "Current", "CURRENT", "_testing", "_testing_1", "a#b", "a$b", "a%b", "a+b", "a/b", `a\b`,
		strings.Repeat("x", 200), strings.Repeat("é", 200),
		"a\x00b", "a\tb", "a\nb", "a\rb", "a\x7fb", "a\u0085b", "\xff\xfe", "a..b", "..", " lead", "trail ", "\u00a0nbsp", "x\u2028",
		UniversalExperiment} {
		if ValidExperimentName(bad) == "" {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	for _, ok := range []string{"", "req-1", "0b6e5a8e-3c1f-4d53-9f8e-5f6b1e2a9c11", "a.b_c:d-E", strings.Repeat("x", MaxRequestIDLen)} {
		if why := ValidRequestID(ok); why != "" {
			t.Errorf("%q refused: %s", ok, why)
		}
	}
	for _, bad := range []string{strings.Repeat("x", MaxRequestIDLen+1), "a b", "a/b", "a\x00", "é", "a\n", "{}", strings.Repeat("x", 500<<10)} {
		if ValidRequestID(bad) == "" {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReservedNames(t *testing.T) {
	for _, n := range []string{"latest", "LATEST", "active", "assignment_count", "$experiment"} {
		if ReservedExperimentName(n) == "" {
			t.Errorf("experiment %q not reserved", n)
		}
	}
	for _, n := range []string{"latest-run", "exp1", "current2"} {
		if why := ReservedExperimentName(n); why != "" {
			t.Errorf("experiment %q reserved: %s", n, why)
		}
	}
	for _, n := range []string{"discover", "Setup", "assignments", "$broadcast"} {
		if ReservedUnitName(n) == "" {
			t.Errorf("unit %q not reserved", n)
		}
	}
	for _, n := range []string{"worker1", "setup2", "leader"} {
		if why := ReservedUnitName(n); why != "" {
			t.Errorf("unit %q reserved: %s", n, why)
		}
	}
}

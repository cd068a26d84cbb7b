package api

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
	for _, bad := range []string{"", "a b", "a.b", "$broadcast", "localhost", "LocalHost", "10.0.0.1", "::1", strings.Repeat("x", 64), "é"} {
		if ValidUnitName(bad) == "" {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestExperimentNames(t *testing.T) {
	for _, ok := range []string{"exp", "Exp 1 (yeast)", "_test", strings.Repeat("x", 199)} {
		if why := ValidExperimentName(ok); why != "" {
			t.Errorf("%q refused: %s", ok, why)
		}
	}
	for _, bad := range []string{"", "current", "_testing", "_testing_1", "a#b", "a$b", "a%b", "a+b", "a/b", `a\b`, strings.Repeat("x", 200)} {
		if ValidExperimentName(bad) == "" {
			t.Errorf("%q accepted", bad)
		}
	}
}

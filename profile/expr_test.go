package profile

import (
	"reflect"
	"strings"
	"testing"
)

// exprEnv is the environment of TestEval: the same variables the values
// below were checked with against Pioreactor's own parser.
var exprEnv = MapEnv{
	Vars: map[string]any{"unit": "u1", "job_name": "j", "experiment": "exp", "hours_elapsed": 2.0, "x": 3},
	Settings: map[string]any{
		"u1:stirring:target_rpm":  "500",
		"u1:stirring:$state":      "ready",
		"pio-2:od_reading:ods":    `{"od": 0.52, "channel": "2", "inner": {"deep": true}}`,
		"u1:od_reading:od1":       map[string]any{"od": 1.25},
		"u1:j:count":              int64(7),
		"u1:monitor:flag":         "TRUE",
		"u1:monitor:quoted":       `"12.5"`,
		"u1:monitor:bytes":        []byte("42"),
		"u1:monitor:not_json":     "{not json",
		"u1:leds:intensity":       `{"B": 40, "C": 20}`,
		"worker1:stirring:rpm":    450.0,
		"worker1:stirring:$state": "sleeping",
	},
}

// TestEval checks values; those of the first part are what Pioreactor's
// parser gives for the same expression and variables.
func TestEval(t *testing.T) {
	for expr, want := range map[string]any{
		// As Pioreactor's parser.
		"1 + 2 * 3": 7.0, "2 ** 3 ** 2": 512.0, "-2 ** 2": -4.0, ".5": 0.5, "8 / 2 / 2": 2.0, "2 - 1 - 1": 0.0,
		"TRUE": true, "false": false, "True and 2": 2.0, "1 or 0": 1.0, "0 and b": 0.0, "a and b": "b",
		"not not 1": true, "not 1 == 2": true, "1 + not 0": 2.0, "a == a": true, "a < b": true,
		"unit": "u1", "unit()": "u1", "job_name()": "j", "experiment()": "exp", "hours_elapsed()": 2.0,
		"hours_elapsed() > 1": true, "x * 2": 6.0, "x == 3": true, "true + 1": 2.0, "3 - -1": 4.0, "--1": 1.0,
		"+1": 1.0, "2 ** -1": 0.5, "a + b": "ab", "(1 + 2) * 3": 9.0, "x > 2 or x < 1": true, "1 >= 1": true,
		"2 <= 1": false, "$state": "$state", "ready == ready": true, "1 == a": false, "1 / 4": 0.25, "10 > 5": true,
		// The wrapper, and white space.
		"${{ 1 + 1 }}": 2.0, "${{1+1}}": 2.0, "\t1\n+ 1 ": 2.0,
		// Settings.
		"u1:stirring:target_rpm + 10":                                 510.0,
		"::stirring:target_rpm":                                       500.0,
		"unit():stirring:target_rpm":                                  500.0,
		"::stirring:$state == ready":                                  true,
		"pio-2:od_reading:ods.od * 100":                               52.0,
		"pio-2:od_reading:ods.channel":                                2.0,
		"pio-2:od_reading:ods.inner.deep":                             true,
		"::od_reading:od1.od > 1.0":                                   true,
		"unit():job_name():count":                                     7.0,
		"u1:monitor:flag":                                             true,
		"u1:monitor:quoted":                                           12.5,
		"u1:monitor:bytes":                                            42.0,
		"u1:monitor:not_json":                                         "{not json",
		"::leds:intensity.B + (::od_reading:od1.od - 1) * 10":         42.5,
		"worker1:stirring:rpm >= 400 and worker1:stirring:rpm <= 650": true,
		"not worker1:stirring:$state == ready":                        true,
		// pio's own: a unary minus as in arithmetic (Pioreactor: -7 and -8).
		"-2 * 3 + 1": -5.0, "2 * -3 + 1": -5.0,
	} {
		if err := ParseExpr(expr); err != nil {
			t.Errorf("ParseExpr(%q) = %v", expr, err)
		}
		got, err := Eval(expr, exprEnv)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Eval(%q) = %#v, %v; want %#v", expr, got, err, want)
		}
	}
}

func TestParseExprErrors(t *testing.T) {
	for expr, want := range map[string]string{
		"":                                "ends too soon",
		"${{ }}":                          "ends too soon",
		"1 +":                             "ends too soon",
		"(1":                              "not closed",
		"1 2":                             `unexpected "2"`,
		"()":                              `unexpected ")"`,
		"and":                             `unexpected "and"`,
		"not":                             "ends too soon",
		"1.":                              "illegal character '.'",
		"1e3":                             `unexpected "e3"`,
		"1 != 2":                          "no !=",
		"a = b":                           "illegal character '='",
		`state == "ready"`:                "quoted texts are not supported",
		"state == 'ready'":                "quoted texts are not supported",
		"1 < 2 < 3":                       "do not chain",
		"1 == 1 == 1":                     "do not chain",
		"foo()":                           "not a function",
		"x:y:z:w":                         "not a reference",
		"::job":                           "after :: comes job:setting",
		"::":                              "after :: comes job:setting",
		"u1:job:":                         "not a reference",
		"u1:job:setting.":                 "not a reference",
		"a:b":                             "illegal character ':'",
		"unit():job_name()x:y":            "illegal character ':'",
		"a$b":                             `unexpected "$b"`,
		strings.Repeat("(", 70):           "nests more than",
		strings.Repeat("-", 70) + "1":     "nests more than",
		strings.Repeat("not ", 70) + "1":  "nests more than",
		strings.Repeat("1", MaxExprLen+1): "at most",
	} {
		err := ParseExpr(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseExpr(%.40q) = %v, want %q", expr, err, want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	for expr, want := range map[string]string{
		"1 / 0":                          "division by zero",
		"0 ** -1":                        "negative power",
		"(0 - 8) ** 0.5":                 "fractional power",
		"10 ** 400":                      "overflows",
		"a < 1":                          `"<" is not supported between str and float`,
		"a - b":                          `"-" is not supported`,
		"-a":                             "bad operand type for unary -",
		"u1:nothing:here":                "u1:nothing:here does not exist",
		"pio-2:od_reading:ods.missing":   "has no key missing",
		"pio-2:od_reading:ods.od.deeper": "not a mapping",
	} {
		if err := ParseExpr(expr); err != nil {
			t.Errorf("ParseExpr(%q) = %v", expr, err)
		}
		if got, err := Eval(expr, exprEnv); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Eval(%q) = %#v, %v; want an error %q", expr, got, err, want)
		}
	}
	// Without an environment: values, but no settings nor functions.
	if v, err := Eval("unit == unit", nil); err != nil || v != true {
		t.Errorf("Eval without env = %v, %v", v, err)
	}
	for _, expr := range []string{"unit()", "::stirring:target_rpm", "u1:stirring:target_rpm", "u1:job_name():x"} {
		if _, err := Eval(expr, nil); err == nil {
			t.Errorf("Eval(%q, nil) has no error", expr)
		}
	}
	if v, err := Eval("random() < 1 and random() >= 0", nil); err != nil || v != true {
		t.Errorf("random() = %v, %v", v, err)
	}
}

func TestEvalHelpers(t *testing.T) {
	for in, want := range map[any]bool{nil: true, true: true, false: false, "1 > 2": false, "${{ ::stirring:target_rpm > 100 }}": true, "0": false, "text": true} {
		if got, err := EvalBool(in, exprEnv); err != nil || got != want {
			t.Errorf("EvalBool(%#v) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := EvalBool(1, exprEnv); err == nil {
		t.Error("EvalBool(1) has no error")
	}
	opts, err := EvalOptions(map[string]any{"a": "${{ ::stirring:target_rpm + 10 }}", "b": "1 + 1", "c": 3, "d": "x ${{ 1 }}"}, exprEnv)
	if want := map[string]any{"a": 510.0, "b": "1 + 1", "c": 3, "d": "x ${{ 1 }}"}; err != nil || !reflect.DeepEqual(opts, want) {
		t.Errorf("EvalOptions = %v, %v; want %v", opts, err, want)
	}
	if _, err := EvalOptions(map[string]any{"a": "${{ 1 / 0 }}"}, exprEnv); err == nil || !strings.Contains(err.Error(), "option a") {
		t.Errorf("EvalOptions of a bad expression: %v", err)
	}
	for in, want := range map[string]string{
		"${{job_name()}} starting at ${{::stirring:target_rpm}} RPM": "j starting at 500.0 RPM",
		"Hello ${{unit()}} and ${{ 1 == 1 }} and ${{ 1 / 3 }}":       "Hello u1 and True and 0.3333333333333333",
		"big ${{ 10 ** 20 }}, small ${{ 1 / 100000 }}, ${{ 1 }}":     "big 1e+20, small 1e-05, 1.0",
		"no expression, ${{ unclosed":                                "no expression, ${{ unclosed",
		"a ${{ \n }} b ${{ 2 }}":                                     "a ${{ \n }} b 2.0",
		"nested ${{ pio-2:od_reading:ods.inner }}":                   `nested {"deep":true}`,
	} {
		if got, err := ExpandMessage(in, exprEnv); err != nil || got != want {
			t.Errorf("ExpandMessage(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	env := WithVars(exprEnv, map[string]any{"unit": "worker1", "extra": 1})
	if v, err := Eval("::stirring:rpm + extra + x", env); err != nil || v != 454.0 {
		t.Errorf("WithVars: %v, %v", v, err)
	}
	if v, err := Eval("unit()", WithVars(nil, map[string]any{"unit": "w"})); err != nil || v != "w" {
		t.Errorf("WithVars(nil): %v, %v", v, err)
	}
}

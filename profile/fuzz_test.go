package profile

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse and Validate never panic, keep their bounds,
// and give errors with positions inside the text; and that the expressions
// of a profile they accept evaluate without panicking.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		for _, data := range corpus(f, dir) {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "[", "a: &a [*a]", "a: &a {<<: *a}", "version: \"1.0\"\nexperiment_profile_name: x\ninputs: {<<: [{a: 1}, {b: 2}]}\n",
		"version: \"1.0\"\nexperiment_profile_name: x\ncommon: {jobs: {s: {actions: [{type: when, t: 0, wait_until: \"${{ ::s:x.y > 1 }}\", actions: [{type: log, t: 0, options: {message: \"${{ unit() }}\"}}]}]}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		// YAML breaks lines at \n, \r, \r\n, NEL, LS and PS.
		lines := 2
		for _, r := range strings.ReplaceAll(string(data), "\r\n", "\n") {
			switch r {
			case '\n', '\r', '\u0085', '\u2028', '\u2029':
				lines++
			}
		}
		if err != nil {
			if p != nil {
				t.Fatal("a profile and an error")
			}
			checkErrors(t, err, lines)
			return
		}
		if err := p.Validate(func(string) bool { return true }); err != nil {
			checkErrors(t, err, lines)
		}
		if err := p.Validate(func(string) bool { return false }); err != nil {
			checkErrors(t, err, lines)
		}
		if ws := p.Warnings(); ws != nil {
			checkErrors(t, ws, lines)
		}
		n := 0
		var walk func([]Action, int)
		walk = func(as []Action, depth int) {
			if depth > MaxNesting {
				t.Fatalf("actions nest %d deep", depth)
			}
			for _, a := range as {
				n++
				for _, c := range []any{a.If, a.While, a.WaitUntil, a.Condition} {
					if s, ok := c.(string); ok && ParseExpr(s) == nil {
						_, _ = EvalBool(s, exprEnv)
					}
				}
				_, _ = EvalOptions(a.Options, exprEnv)
				if m, ok := a.Options["message"].(string); ok {
					_, _ = ExpandMessage(m, exprEnv)
				}
				walk(a.Actions, depth+1)
			}
		}
		for _, j := range p.Common.Jobs {
			walk(j.Actions, 1)
		}
		for _, b := range p.Units {
			for _, j := range b.Jobs {
				walk(j.Actions, 1)
			}
		}
		if n > MaxActions {
			t.Fatalf("%d actions", n)
		}
	})
}

func checkErrors(t *testing.T, err error, lines int) {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 || len(es) > MaxErrors {
		t.Fatalf("%T with %d errors: %.200v", err, len(es), err)
	}
	for _, e := range es {
		if e.Line < 0 || e.Line > lines || e.Column < 0 || e.Msg == "" {
			t.Fatalf("error at %d:%d of %d lines: %q", e.Line, e.Column, lines, e.Msg)
		}
	}
}

// FuzzEval checks that no expression makes ParseExpr or Eval panic, and
// that Eval parses what ParseExpr accepts.
func FuzzEval(f *testing.F) {
	for _, s := range []string{"1 + 2 * 3", "::stirring:target_rpm > 1", "pio-2:od_reading:ods.inner.deep", "not (a and b) or c",
		"${{ unit() }}", "2 ** -1 ** 2", "u1:monitor:not_json < 3", "1 + not 0 == 1", "--1", "x:y:z:w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		perr := ParseExpr(s)
		_, err := Eval(s, exprEnv)
		if perr != nil && err == nil {
			t.Fatalf("ParseExpr(%q) = %v, but Eval has no error", s, perr)
		}
		_, _ = ExpandMessage(s, exprEnv)
	})
}

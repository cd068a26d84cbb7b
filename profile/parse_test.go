package profile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// corpusJobs are the jobs the corpus's profiles use (pio's and Pioreactor's).
var corpusJobs = map[string]bool{
	"stirring": true, "od_reading": true, "temperature_automation": true, "dosing_automation": true,
	"led_automation": true, "led_intensity": true, "add_media": true, "remove_waste": true,
	"growth_rate_calculating": true,
}

func knownCorpusJob(job string) bool { return corpusJobs[job] }

func corpus(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no profiles in testdata/%s: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// TestCorpusValid parses and validates every profile of testdata/valid,
// written in the structure of Pioreactor's published examples.
func TestCorpusValid(t *testing.T) {
	for name, data := range corpus(t, "valid") {
		t.Run(name, func(t *testing.T) {
			p, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := p.Validate(knownCorpusJob); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if p.Version != "1.0" || p.Name == "" {
				t.Errorf("version %q, name %q", p.Version, p.Name)
			}
			n := 0
			var count func([]Action)
			count = func(as []Action) {
				for _, a := range as {
					n++
					count(a.Actions)
				}
			}
			for _, j := range p.Common.Jobs {
				count(j.Actions)
			}
			for _, b := range p.Units {
				for _, j := range b.Jobs {
					count(j.Actions)
				}
			}
			if n == 0 && name != "15_minimal.yaml" {
				t.Errorf("no actions read")
			}
		})
	}
}

// want is an expected error: "# want L:C text" at the top of a file of
// testdata/invalid.
type want struct {
	line, col int
	text      string
}

func wants(t *testing.T, data []byte) []want {
	var out []want
	for _, l := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(l, "# want ")
		if !ok {
			continue
		}
		var w want
		pos, text, _ := strings.Cut(rest, " ")
		if _, err := fmt.Sscanf(pos, "%d:%d", &w.line, &w.col); err != nil {
			t.Fatalf("bad want line %q", l)
		}
		w.text = text
		out = append(out, w)
	}
	if len(out) == 0 {
		t.Fatal("no # want lines")
	}
	return out
}

// TestCorpusInvalid checks that every profile of testdata/invalid is
// refused, by Parse or else by Validate, with exactly the errors its
// "# want L:C text" lines list, in order.
func TestCorpusInvalid(t *testing.T) {
	for name, data := range corpus(t, "invalid") {
		t.Run(name, func(t *testing.T) {
			ws := wants(t, data)
			p, err := Parse(data)
			if err == nil {
				err = p.Validate(knownCorpusJob)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("%T is not Errors: %v", err, err)
			}
			if len(es) != len(ws) {
				t.Fatalf("%d errors, want %d:\n%v", len(es), len(ws), err)
			}
			for i, w := range ws {
				e := es[i]
				if e.Line != w.line || e.Column != w.col || !strings.Contains(e.Msg, w.text) {
					t.Errorf("error %d is %q at %d:%d; want %q at %d:%d", i, e.Msg, e.Line, e.Column, w.text, w.line, w.col)
				}
				if got := e.Error(); got != fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg) {
					t.Errorf("Error() = %q", got)
				}
			}
			var one *Error
			if !errors.As(err, &one) || one != es[0] {
				t.Errorf("errors.As(*Error) does not find the first error")
			}
		})
	}
}

// TestParseValues checks what Parse reads, field by field.
func TestParseValues(t *testing.T) {
	p, err := Parse([]byte(`
version: "1.0"
experiment_profile_name: values
metadata: {author: a, description: d}
inputs: {base: 3, name: x, list: [1, 2.5, true, null], nested: {k: v}}
pioreactors:
  u1:
    label: L
    jobs:
      stirring:
        description: D
        actions:
          - type: start
            t: 1
            if: yes
            options: {target_rpm: 500, on: true, f: 1.5, s: text}
            args: [a, b]
            config_overrides: {k: 2}
          - type: repeat
            hours_elapsed: 2
            repeat_every_hours: 0.5
            max_hours: 4
            while: ::stirring:target_rpm < 900
            actions:
              - type: log
                t: 10s
                options: {message: m, level: INFO, extra: ignored}
          - type: repeat
            t: 3h
            every: 30m
            max_time: 6
            while: off
            actions: []
          - type: when
            t: 0
            condition: "true"
            wait_until: false
            actions: []
`))
	if err != nil {
		t.Fatal(err)
	}
	f := func(x float64) *float64 { return &x }
	want := &Profile{
		Version: "1.0", Name: "values",
		Metadata: Metadata{Author: "a", Description: "d"},
		Inputs:   map[string]any{"base": 3, "name": "x", "list": []any{1, 2.5, true, nil}, "nested": map[string]any{"k": "v"}},
		Units: map[string]Block{"u1": {Label: "L", Jobs: map[string]Job{"stirring": {Description: "D", Actions: []Action{
			{Type: "start", T: 1.0, If: true, Options: map[string]any{"target_rpm": 500, "on": true, "f": 1.5, "s": "text"},
				Args: []string{"a", "b"}, ConfigOverrides: map[string]any{"k": 2}},
			{Type: "repeat", HoursElapsed: f(2), RepeatEveryHours: f(0.5), MaxHours: f(4), While: "::stirring:target_rpm < 900",
				Actions: []Action{{Type: "log", T: "10s", Options: map[string]any{"message": "m", "level": "INFO"}}}},
			{Type: "repeat", T: "3h", Every: "30m", MaxTime: 6.0, While: false, Actions: []Action{}},
			{Type: "when", T: 0.0, Condition: "true", WaitUntil: "false", Actions: []Action{}},
		}}}}},
	}
	want.pos = p.pos
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Parse =\n%#v\nwant\n%#v", p, want)
	}
	if err := p.Validate(nil); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := (&Profile{Version: "1.0", Name: "built"}).Validate(nil); err != nil {
		t.Errorf("Validate of a built profile: %v", err)
	}
	// A profile built in Go has no positions: its errors are at 0:0.
	err = (&Profile{Version: "2.0", Common: Block{Jobs: map[string]Job{"stirring": {Actions: []Action{{Type: "start"}}}}}}).Validate(nil)
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 || es[0].Line != 0 || es[1].Path != "common.jobs.stirring.actions[0]" {
		t.Errorf("Validate of a bad built profile = %v", err)
	}
}

// TestParseBounds checks the bounds: size, actions, nesting, YAML depth and
// aliases, and the count of errors.
func TestParseBounds(t *testing.T) {
	head := "version: \"1.0\"\nexperiment_profile_name: b\ncommon:\n  jobs:\n    stirring:\n      actions:\n"
	var many strings.Builder
	many.WriteString(head)
	for i := 0; i <= MaxActions; i++ {
		many.WriteString("        - {type: stop}\n")
	}
	nest := head
	indent := "        "
	for i := 0; i < MaxNesting+1; i++ {
		nest += indent + "- type: when\n" + indent + "  t: 0\n" + indent + "  wait_until: true\n" + indent + "  actions:\n"
		indent += "    "
	}
	nest += indent + "- {type: stop, t: 0}\n"
	deep := head + "        - {type: start, t: 0, options: {x: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}}\n"
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
	bomb = head + "        - type: start\n          t: 0\n          options:\n            " + strings.ReplaceAll(strings.TrimSpace(bomb), "\n", "\n            ") + "\n"
	var errs strings.Builder
	errs.WriteString(head)
	for i := 0; i < 2*MaxErrors; i++ {
		errs.WriteString("        - {type: stop, t: 1, bad: 1}\n")
	}
	for name, c := range map[string]struct {
		data string
		want string
	}{
		"size":    {strings.Repeat("#", MaxSize+1), "at most"},
		"actions": {many.String(), fmt.Sprintf("more than %d actions", MaxActions)},
		"nesting": {nest, fmt.Sprintf("nest more than %d deep", MaxNesting)},
		"depth":   {deep, "nests more than"},
		"aliases": {bomb, "YAML values (aliases expanded)"},
		"self":    {head + "        - &x {type: when, t: 0, wait_until: x, actions: [*x]}\n", "nest more than"},
		"merge":   {"version: \"1.0\"\nexperiment_profile_name: m\ninputs: &a {<<: *a}\n", "merge keys (<<) nest more than 8 deep"},
		"errors":  {errs.String(), "has no field bad"},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse([]byte(c.data))
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 || len(es) > MaxErrors || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %.300v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestParseYAMLForms checks forms of YAML that PyYAML reads as Pioreactor
// does: YAML 1.1 booleans, a second document, an empty profile.
func TestParseYAMLForms(t *testing.T) {
	base := "version: \"1.0\"\nexperiment_profile_name: y\ncommon:\n  jobs:\n    stirring:\n      actions:\n        - type: start\n          t: 0\n          if: %s\n"
	for in, want := range map[string]any{"yes": true, "No": false, "ON": true, "off": false, "True": true, "'yes'": "yes", "y": "y", "maybe": "maybe"} {
		p, err := Parse([]byte(fmt.Sprintf(base, in)))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := p.Common.Jobs["stirring"].Actions[0].If; got != want {
			t.Errorf("if: %s is %#v, want %#v", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"":                              "line 1, column 1: the profile is empty",
		"# only a comment\n":            "the profile is empty",
		"version: \"1.0\"\n---\nx: 1\n": "line 2, column 1: a profile is one YAML document",
		"[1, 2]":                        "a profile must be a mapping, not a list",
		"version: !!binary aGk=\nexperiment_profile_name: x\n": "must be the text \"1.0\"",
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", in, err, want)
		}
	}
}

// TestWarnings checks what Pioreactor warns of, and that the corpus has
// nothing to warn of but what it means to.
func TestWarnings(t *testing.T) {
	p, err := Parse([]byte(`version: "1.0"
experiment_profile_name: warnings
common:
  jobs:
    stirring:
      actions:
        - {type: update, t: 0, options: {target_rpm: 1}}
        - {type: start, t: 1}
        - {type: stop, t: 2}
        - {type: pause, t: 3}
        - type: repeat
          t: 4
          every: 1h
          repeat_every_hours: 2
          actions:
            - {type: start, t: 90m}
            - {type: stop, hours_elapsed: 3}
        - {type: when, t: 5, wait_until: "true", condition: "false", actions: []}
`))
	if err != nil {
		t.Fatal(err)
	}
	ws := p.Warnings()
	want := []string{"7:11 before any start", "10:11 before any start", "11:11 both repeat_every_hours and every",
		"17:43 never runs", "18:11 both wait_until and condition"}
	if len(ws) != len(want) {
		t.Fatalf("warnings:\n%v", ws)
	}
	for i, w := range want {
		pos, text, _ := strings.Cut(w, " ")
		if got := fmt.Sprintf("%d:%d", ws[i].Line, ws[i].Column); got != pos || !strings.Contains(ws[i].Msg, text) {
			t.Errorf("warning %d = %v; want %s", i, ws[i], w)
		}
	}
	for name, data := range corpus(t, "valid") {
		p, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		// The stop of common comes before the starts of the units' blocks, as
		// in Pioreactor's example of the same structure.
		want := 0
		if name == "02_warm_and_cool_labels.yaml" {
			want = 1
		}
		if ws := p.Warnings(); len(ws) != want {
			t.Errorf("%s: %v", name, ws)
		}
	}
}
